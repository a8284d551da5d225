"""The real interLink chain for the end-to-end tier: building interLink's binaries and
running them (interLink API server and virtual kubelet) between two embedded clusters.

Lives under tests/ on purpose: none of it ships in the wheel.
"""

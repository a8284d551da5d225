"""The sidecar's shared vocabulary: leaf modules every layer may import, importing no
other part of the sidecar (JSON shapes and their errors, pod identities, remote names
and labels). The layers above: ``remote`` < ``status`` < ``offload`` < ``api`` < ``app``
(pyproject.toml's import-linter contract keeps them so)."""

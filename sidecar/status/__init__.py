"""Remote pod status as interLink wants it."""

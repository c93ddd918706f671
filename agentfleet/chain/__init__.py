"""The fleet's chain layer: artifacts, keys, nonces, signing, typed contract bindings, deployment."""

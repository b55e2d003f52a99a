//! Pushing a stored image to a registry.

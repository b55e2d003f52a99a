//! Image archives: `docker save` tars and OCI layouts.

"""Hardware: detection through the backend plugins, and choosing a device by priority."""

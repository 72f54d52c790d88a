"""HTTP: routes that translate requests into service calls, and errors into problem documents."""

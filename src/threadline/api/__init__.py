"""HTTP: routing, parsing into wire schemas, auth, error rendering and SSE. The only package that
imports the web framework."""

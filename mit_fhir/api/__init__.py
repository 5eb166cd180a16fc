"""HTTP layer: Flask blueprints that parse a request, call one domain function, serialise."""

"""Generated tests: composing a pipeline's template with a backend's snippets, and the
command-line options every generated file accepts."""

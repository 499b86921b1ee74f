"""The offline simulator: an OpenAI-compatible HTTP server with canned, labelled replies.

It is a test and demo tool, not a model. It serves the no-key default run, the integration
and browser tests and the benchmarks. Run it with `python manage.py simulator`.
"""

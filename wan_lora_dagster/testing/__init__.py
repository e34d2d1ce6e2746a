"""What the tests and the benchmarks build and run, shared so that no test module imports another:
the FAKE musubi-tuner clone and random weights, the scenarios of whole-graph runs, servers of the
team deployment, and the commands as a user's shell starts them. Nothing in the product imports
this package (the top layer in pyproject.toml)."""

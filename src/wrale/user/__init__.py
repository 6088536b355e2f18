"""user: the central API, the dashboard and the ``wrale`` command line."""

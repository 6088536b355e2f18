"""Request and response schemas of the central API (``XCreate`` / ``XUpdate`` / ``XPublic``)."""

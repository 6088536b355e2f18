"""The fleet's maintenance (DESIGN.md §9): maintenance windows with physical conditions
(``windows``), and wear trends with the maintenance queue (``wear``, ``queue``)."""

"""Analysis: read runs from W&B into pandas, redraw the paper figures, tables and reports."""

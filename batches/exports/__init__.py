"""Downloads: a batch's rows (batches.py) and a comparison of two batches (compare.py), as CSV, XLSX or JSONL."""

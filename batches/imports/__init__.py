"""Everything an import file goes through before a row is written: readers (CSV, XLSX, JSONL, ZIP), the column
mapping, input checks, file variables (as Dify checks them: `batches.dify.file_types`), and the upload kept between
preview and import."""

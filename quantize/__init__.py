"""`python -m quantize`: one model, one method, one artifact folder."""

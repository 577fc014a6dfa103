"""`python -m evaluate sweep`: plan (`plan`), cells and their status (`cells`), running one
cell (`execute`), where cells run (`launchers`), and the whole sweep (`run`)."""

"""Reading finished runs: comparisons over seeds, studies, figures and reports."""

"""The library's statistics: counts per day and branch that outlive the records they
count (issue 21). ``fields`` names what is counted; ``report`` sums and shapes it."""

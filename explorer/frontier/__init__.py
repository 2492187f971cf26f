"""The frontier: what a grid evaluates (grid.py), its run loop (evaluation.py), cache and journal
(cache.py), the results dataset (results.py), Pareto mask and hypervolume (pareto.py), choosing a
mix (choose.py) and adaptive grids (adaptive.py, adaptive_grid.py)."""

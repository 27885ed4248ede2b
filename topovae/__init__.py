"""topovae: design-space generative topology optimization.

Parts: `topovae.solvers` (SIMP on 2D grids). See docs/architecture.md.
"""

__version__ = "0.1.0"

"""Graded questions, one module per chapter (``ch01``, ``ch02``, ...; chapters 01-10 and appendix A).

Each module exposes ``check_qN`` objects (see :class:`ganlib.grading.Question`) that
exercise notebooks call in their check cells, and ``QUESTIONS``, the list the grader runs.
"""

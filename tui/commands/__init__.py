"""Command-line programs beside ``kiln``'s main parser (``tui/cli.py``).

``finetune`` is the ``kiln finetune`` sub-command; ``kiln_bench`` is the ``kiln-bench``
program that profiles run as an external benchmark tool
(``python -m kiln_lab.tui.commands.kiln_bench``). They are front end (argument parsing,
printing) over ``kiln_lab.core``; like the rest of the command line they never import
Textual, which ``tests/core/test_layering.py`` checks.
"""

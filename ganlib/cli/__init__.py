"""The ``ganlib`` command line: one module per command, each holding its parser and its body (chapter 00).

==============  ==========================================================================
``grade``       grade exercise notebooks (:mod:`ganlib.grading`), chapter 00
``exercises``   regenerate ``exercises/`` from ``solutions/`` (:mod:`ganlib.authoring`)
``train``       train a GAN on images with :func:`ganlib.train.train_gan`, chapter 07
``sample``      samples or an image grid from a checkpoint (:mod:`ganlib.checkpoints`), chapter 07
``evaluate``    FID, precision/recall, classifier score (:mod:`ganlib.metrics`), chapter 09
==============  ==========================================================================

Each module has ``main(argv) -> exit code``; ``python -m ganlib COMMAND`` (:mod:`ganlib.__main__`)
dispatches to it. The command line imports the library; the library does not import the
command line (a test checks it), except the deprecated aliases ``ganlib.train.main_train`` and
``main_sample``, kept while lessons still call them. A new command is a new module here, plus
one line in ``ganlib/__main__.py``.
"""

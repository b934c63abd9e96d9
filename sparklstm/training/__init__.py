"""Training: the options (one definition for every view, :mod:`.options`), the minibatch step
shared by both trainers (:mod:`.step`), the one-process loop (:mod:`.fit`), the history and
early stopping (:mod:`.history`) and the progress bar (:mod:`.progress`).

The submodules are imported when used (``from sparklstm.training.fit import fit``), so
importing one does not import the others.
"""

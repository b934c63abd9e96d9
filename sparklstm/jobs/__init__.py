"""The jobs: command-line programs over the library, installed as commands with the wheel.

=====================  ==========================  =====================================
command                 module                      does
=====================  ==========================  =====================================
sparklstm-train         :mod:`.train`               trains on Spark, saves the model
sparklstm-predict       :mod:`.predict`             appends predictions to a table
sparklstm-evaluate      :mod:`.evaluate`            loss and metrics of a model on a table
sparklstm-make-data     :mod:`.make_data`           writes generated or public datasets
sparklstm-train-local   :mod:`.train_local`         trains in one process (no Spark)
=====================  ==========================  =====================================

``spark-submit`` takes a file: ``jobs/train.py`` (and the others) in a checkout are two-line
entry points into these modules, which is what ``spark-submit jobs/train.py`` runs.
"""

"""``python -m jobs.train_local ...``: the file to give spark-submit
(or ``python -m``); the job is :mod:`sparklstm.jobs.train_local`,
installed as the ``sparklstm-train-local`` command."""

from sparklstm.jobs.train_local import command

if __name__ == "__main__":
    command()

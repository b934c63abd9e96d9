"""``spark-submit jobs/train.py ...``: the file to give spark-submit
(or ``python -m``); the job is :mod:`sparklstm.jobs.train`,
installed as the ``sparklstm-train`` command."""

from sparklstm.jobs.train import command

if __name__ == "__main__":
    command()

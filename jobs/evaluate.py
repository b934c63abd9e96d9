"""``spark-submit jobs/evaluate.py ...``: the file to give spark-submit
(or ``python -m``); the job is :mod:`sparklstm.jobs.evaluate`,
installed as the ``sparklstm-evaluate`` command."""

from sparklstm.jobs.evaluate import command

if __name__ == "__main__":
    command()

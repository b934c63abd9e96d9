"""``spark-submit jobs/predict.py ...``: the file to give spark-submit
(or ``python -m``); the job is :mod:`sparklstm.jobs.predict`,
installed as the ``sparklstm-predict`` command."""

from sparklstm.jobs.predict import command

if __name__ == "__main__":
    command()

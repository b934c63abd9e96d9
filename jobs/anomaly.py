"""``spark-submit jobs/anomaly.py ...``: the file to give spark-submit
(or ``python -m``); the job is :mod:`sparklstm.jobs.anomaly`."""

from sparklstm.jobs.anomaly import command

if __name__ == "__main__":
    command()

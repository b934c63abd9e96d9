"""``python -m jobs.make_data TASK ...``: the file to give spark-submit
(or ``python -m``); the job is :mod:`sparklstm.jobs.make_data`,
installed as the ``sparklstm-make-data`` command."""

from sparklstm.jobs.make_data import command

if __name__ == "__main__":
    command()

"""PySyncObj under the same load and FSM (``--peers``); it never fsyncs."""

import queue
import time

from .common import DRAIN_TIMEOUT, IMPL_PSO, PYSYNCOBJ_CONFS, RESULT_TIMEOUT, BenchError, payload
from .loads import BenchFSM, LoadStats


class PySyncObjNode:
    """A PySyncObj node with the same FSM, for --peers."""

    impl = IMPL_PSO

    def __init__(self, node_id, servers, data_dir, conf_name):
        from pysyncobj import SyncObj, SyncObjConf, replicated

        class Replicated(SyncObj):
            def __init__(self, self_address, partners, conf):
                super().__init__(self_address, partners, conf)
                self.fsm = BenchFSM()

            @replicated
            def apply_command(self, command):
                return self.fsm.apply(command)

        self.conf_name = conf_name
        address = dict(servers)[node_id]
        partners = [a for i, a in servers if i != node_id]
        self.obj = Replicated(address, partners, SyncObjConf(**PYSYNCOBJ_CONFS[conf_name]))
        self.node_id = node_id
        self.ids = {a: i for i, a in servers}

    def status(self):
        s = self.obj.getStatus()
        names = {0: "FOLLOWER", 1: "CANDIDATE", 2: "LEADER"}
        leader = s["leader"]
        return dict(state=names.get(s["state"], str(s["state"])),
                    leader=self.ids.get(getattr(leader, "address", None), 0), term=s["raft_term"],
                    commit_index=s["commit_idx"], last_applied=s["last_applied"],
                    last_index=s["log_len"], count=self.obj.fsm.count)

    def load(self, size, window, warmup, duration, out):
        from pysyncobj import FAIL_REASON
        if self.obj.getStatus()["state"] != 2:
            raise BenchError(f"node {self.node_id} is not the leader")
        command = payload(size)
        st = LoadStats(warmup, duration)
        apply, now = self.obj.apply_command, time.perf_counter_ns
        start, end, lat = st.start, st.end, st.lat
        if window == 1:
            st.run_blocking(lambda: apply(command, sync=True, timeout=RESULT_TIMEOUT), out)
            return st.reply(api="sync=True")

        done = queue.SimpleQueue()
        put, get, get_nowait = done.put, done.get, done.get_nowait

        def settle(item):
            t0, t1, err = item
            if err != FAIL_REASON.SUCCESS:
                st.error(f"FAIL_REASON {err}")
            elif start <= t1 <= end:
                lat.append(t1 - t0)

        inflight = 0
        while True:
            t = now()
            if t >= end:
                break
            st.begin_if_due(t, out)
            for _ in range(window - inflight):
                t0 = now()
                apply(command, callback=lambda result, err, t0=t0: put((t0, now(), err)))
            st.submitted += window - inflight
            inflight = window
            boundary = end if st.measuring else start
            try:
                item = get(True, max(0.0005, (boundary - now()) / 1e9))
            except queue.Empty:
                continue
            inflight -= 1
            settle(item)
            while True:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                inflight -= 1
                settle(item)
        st.finish(out)
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while inflight:
            try:
                settle(get(True, max(0.001, deadline - time.monotonic())))
            except queue.Empty:
                break
            inflight -= 1
        st.pending = inflight
        return st.reply(api="callback", conf=self.conf_name)

    def close(self):
        self.obj.destroy()


"""Faults. A nemesis injects one fault (`fault`) and undoes it (`heal`);
`Schedule` repeats fault / hold / heal / wait-for-progress / quiet until
the run's fault window closes, and records when each heal happened.
"""

import os
import threading
import time

from .cluster import NodeGone, NodeTimeout


class Nemesis:
    name = "none"
    needs_netns = False
    hold = (3.0, 5.0)           # seconds a fault lasts

    def __init__(self, cluster, rng, log):
        self.cluster = cluster
        self.rng = rng
        self.log = log
        self.stats = {}

    def fault(self):
        """Inject the fault; returns a description, or None if it could not."""
        return None

    def heal(self):
        pass

    def during(self, stop):
        """Called once the fault is in, for the length of the hold (flapping
        partitions act here); returns when stop is set."""
        stop.wait()

    def count(self, what, n=1):
        self.stats[what] = self.stats.get(what, 0) + n

    def finish(self):
        """After the last heal: leave nothing behind."""
        self.heal()


class NoFault(Nemesis):
    name = "none"


# -- processes -------------------------------------------------------------------

class KillLeader(Nemesis):
    name = "kill-leader"
    hold = (1.0, 4.0)

    def fault(self):
        lead = self.cluster.leader()
        if lead is None:
            return None
        self.cluster.kill(lead)
        self.victims = [lead]
        return f"SIGKILL leader {lead}"

    def heal(self):
        for i in getattr(self, "victims", []):
            if not self.cluster.alive(i) and i in self.cluster.members:
                self.cluster.restart(i)
        self.victims = []


class KillFollower(KillLeader):
    name = "kill-follower"

    def fault(self):
        lead = self.cluster.leader()
        followers = self.cluster.followers(lead)
        if not followers:
            return None
        victim = self.rng.choice(followers)
        self.cluster.kill(victim)
        self.victims = [victim]
        return f"SIGKILL follower {victim}"


class KillAll(KillLeader):
    name = "kill-all"
    hold = (0.5, 2.0)

    def fault(self):
        self.victims = self.cluster.live_members()
        for i in self.victims:
            self.cluster.kill(i)
        return f"SIGKILL all ({self.victims})"


class PauseLeader(Nemesis):
    """SIGSTOP longer than the election timeout (randomised up to twice it)."""
    name = "pause-leader"
    hold = (3.0, 5.0)

    def fault(self):
        lead = self.cluster.leader()
        if lead is None:
            return None
        self.cluster.pause(lead)
        self.victims = [lead]
        return f"SIGSTOP leader {lead}"

    def heal(self):
        for i in getattr(self, "victims", []):
            self.cluster.resume(i)
        self.victims = []


class PauseFollower(PauseLeader):
    name = "pause-follower"

    def fault(self):
        followers = self.cluster.followers()
        if not followers:
            return None
        victim = self.rng.choice(followers)
        self.cluster.pause(victim)
        self.victims = [victim]
        return f"SIGSTOP follower {victim}"


# -- network partitions (netns) -------------------------------------------------------

class PartitionLeader(Nemesis):
    name = "partition-leader"
    needs_netns = True
    hold = (3.0, 6.0)

    def fault(self):
        lead = self.cluster.leader()
        if lead is None:
            return None
        others = [i for i in self.cluster.members if i != lead]
        self.cluster.net.partition([[lead], others])
        return f"isolate leader {lead} from {others}"

    def heal(self):
        self.cluster.net.heal()


class PartitionHalves(PartitionLeader):
    """A random majority / minority split (the leader on either side)."""
    name = "partition-halves"

    def fault(self):
        ids = sorted(self.cluster.members)
        self.rng.shuffle(ids)
        minority = ids[:(len(ids) - 1) // 2]
        majority = ids[len(minority):]
        self.cluster.net.partition([sorted(minority), sorted(majority)])
        lead = self.cluster.guess_leader()
        side = "minority" if lead in minority else "majority"
        return f"partition {sorted(minority)} | {sorted(majority)} (leader {lead} in the {side})"


class PartitionOneWay(PartitionLeader):
    """The leader's messages to the followers are lost, but theirs reach it;
    or the other way round."""
    name = "partition-one-way"

    def fault(self):
        lead = self.cluster.leader()
        if lead is None:
            return None
        others = [i for i in self.cluster.members if i != lead]
        if self.rng.random() < 0.5:
            for i in others:
                self.cluster.net.block(lead, i)
            return f"one-way: leader {lead} -> {others} dropped"
        for i in others:
            self.cluster.net.block(i, lead)
        return f"one-way: {others} -> leader {lead} dropped"


class PartitionFlapping(PartitionLeader):
    """Random partitions that change every 0.3-1.5 s for the whole hold."""
    name = "partition-flapping"
    hold = (6.0, 9.0)

    def fault(self):
        self._flip()
        return "flapping partitions"

    def _flip(self):
        net = self.cluster.net
        net.heal()
        ids = sorted(self.cluster.members)
        self.rng.shuffle(ids)
        if self.rng.random() < 0.25:
            return                          # healed for a moment
        cut = self.rng.randint(1, len(ids) - 1)
        net.partition([ids[:cut], ids[cut:]])
        self.count("flips")

    def during(self, stop):
        while not stop.wait(self.rng.uniform(0.3, 1.5)):
            self._flip()


class KillOrPartitionLeader(Nemesis):
    """The leader is SIGKILLed and isolated in turn (paused instead when
    there are no network namespaces): the any-node scenarios, where the
    clients of every node lose the leader their writes and reads go to."""
    name = "kill-or-partition-leader"
    hold = (2.0, 5.0)

    def fault(self):
        lead = self.cluster.leader()
        if lead is None:
            return None
        self.victim = lead
        n = sum(self.stats.values())
        if n % 2 == 0:
            self.how = "kill"
            self.cluster.kill(lead)
            self.count("kills")
            return f"SIGKILL leader {lead}"
        others = [i for i in self.cluster.members if i != lead]
        if getattr(self.cluster.net, "partitions", False):
            self.how = "partition"
            self.cluster.net.partition([[lead], others])
            self.count("partitions")
            return f"isolate leader {lead} from {others}"
        self.how = "pause"
        self.cluster.pause(lead)
        self.count("pauses")
        return f"SIGSTOP leader {lead} (no netns to isolate it)"

    def heal(self):
        victim, how = getattr(self, "victim", None), getattr(self, "how", None)
        self.victim = self.how = None
        if how == "kill" and not self.cluster.alive(victim) and victim in self.cluster.members:
            self.cluster.restart(victim)
        elif how == "partition":
            self.cluster.net.heal()
        elif how == "pause":
            self.cluster.resume(victim)


# -- lagging node, membership, disk --------------------------------------------------

class LaggingSnapshot(Nemesis):
    """A follower is stopped (SIGSTOP or SIGKILL) while the leader takes
    snapshots and compacts its log past the follower's last entry; when it
    comes back, it must install a snapshot from the leader."""
    name = "lagging-snapshot"
    hold = (6.0, 8.0)

    def fault(self):
        followers = self.cluster.followers()
        if not followers:
            return None
        victim = self.rng.choice(followers)
        self.victims = [victim]
        if self.rng.random() < 0.5:
            self.cluster.pause(victim)
            self.how = "pause"
            return f"SIGSTOP follower {victim} (to lag)"
        self.cluster.kill(victim)
        self.how = "kill"
        return f"SIGKILL follower {victim} (to lag)"

    def heal(self):
        for i in getattr(self, "victims", []):
            if self.how == "pause":
                self.cluster.resume(i)
            elif not self.cluster.alive(i) and i in self.cluster.members:
                self.cluster.restart(i)
        self.victims = []


class MembershipChange(Nemesis):
    """Replace a follower by a new node while faults happen: SIGKILL a
    follower, remove it from the configuration, start a fresh node and
    add it (a voter once caught up); half of the time the leader is
    paused while the change is under way."""
    name = "membership"
    hold = (1.0, 2.0)
    change_timeout = 20.0

    def fault(self):
        c = self.cluster
        lead = c.leader()
        followers = c.followers(lead)
        if lead is None or not followers:
            return None
        victim = self.rng.choice(followers)
        c.kill(victim)
        self.pause_thread = None
        if self.rng.random() < 0.5:
            self.pause_thread = threading.Thread(target=self._pause_leader_later, args=(lead,),
                                                 daemon=True)
            self.pause_thread.start()
        ok = self._change("remove", id=victim)
        if ok:
            c.members.discard(victim)
            c.removed.add(victim)
            self.count("removed")
        new = max(set(c.nodes) | c.members) + 1
        c.spawn(new).wait_started()
        c.members.add(new)
        ok2 = self._change("add", id=new, address=c.address(new))
        if ok2:
            self.count("added")
        else:
            c.members.discard(new)
            c.nodes[new].stop()
        if self.pause_thread is not None:
            self.pause_thread.join(10)
        return (f"SIGKILL {victim}, remove {victim}: {'ok' if ok else 'FAILED'}, "
                f"add {new}: {'ok' if ok2 else 'FAILED'}")

    def _pause_leader_later(self, lead):
        time.sleep(self.rng.uniform(0.0, 0.5))
        if self.cluster.alive(lead):
            self.cluster.pause(lead)
            time.sleep(3.0)
            self.cluster.resume(lead)

    def _change(self, op, **kw):
        """Run a configuration change on whoever leads, until it is done or
        the timeout passes. A change whose outcome is unknown (leadership
        lost) is checked against the configuration."""
        deadline = time.monotonic() + self.change_timeout
        while time.monotonic() < deadline:
            lead = self.cluster.guess_leader() or self.cluster.leader(timeout=1.0)
            if lead is None or self.cluster.nodes[lead].paused:
                time.sleep(0.3)
                continue
            try:
                reply = self.cluster.nodes[lead].request(op, timeout=10.0, **kw)
            except (NodeTimeout, NodeGone):
                reply = {"ok": False, "error": "timeout"}
            if reply.get("ok"):
                return True
            if self._done(op, kw["id"]):
                return True
            time.sleep(0.3)
        return False

    def _done(self, op, id):
        st = self.cluster.statuses()
        for s in st.values():
            if s.get("is_leader"):
                conf = {sid: role for sid, _, role in s["configuration"]}
                if op == "remove":
                    return id not in conf
                return conf.get(id) == "VOTER"
        return False

    def heal(self):
        if getattr(self, "pause_thread", None) is not None:
            self.pause_thread.join(10)


class DiskFull(Nemesis):
    """The last node's data dir is a small tmpfs; the fault fills it up, the
    heal frees the space. Every other time that node is made the leader
    first (leadership transfer), else a follower. The node must not crash,
    must say why it cannot write (or at least keep serving from the
    others), and must catch up once there is space again; then it is
    SIGKILLed and restarted, so that what it left on disk is read back."""
    name = "disk-full"
    hold = (10.0, 14.0)

    def __init__(self, cluster, rng, log):
        super().__init__(cluster, rng, log)
        self.filler = None
        self.round = 0

    @property
    def victim(self):
        return max(self.cluster.members)

    def _arrange(self, want_leader):
        """Make the victim the leader (or not), by leadership transfer."""
        c = self.cluster
        for _ in range(3):
            lead = c.leader()
            if lead is None:
                time.sleep(0.5)
                continue
            if (lead == self.victim) == want_leader:
                return lead
            target = self.victim if want_leader else 0
            try:
                c.nodes[lead].request("transfer", timeout=10.0, id=target)
            except (NodeTimeout, NodeGone):
                pass
            time.sleep(0.5)
        return c.leader()

    def fault(self):
        self.round += 1
        lead = self._arrange(want_leader=self.round % 2 == 1)
        d = self.cluster.data_dir(self.victim)
        self.filler = os.path.join(d, "filler")
        written = self._fill()
        st = os.statvfs(d)
        self.count("fills")
        role = "leader" if lead == self.victim else "follower"
        self.count(f"as {role}")
        return (f"filled node {self.victim}'s disk ({role}): +{written >> 20} MiB, "
                f"{st.f_bavail * st.f_frsize} bytes left")

    def _fill(self):
        """Take every free byte (appending to the filler files)."""
        written = 0
        for path, size in ((self.filler, 1 << 20), (self.filler + "2", 4096)):
            try:
                with open(path, "ab") as f:
                    while True:
                        f.write(b"\0" * size)
                        f.flush()
                        written += size
            except OSError:
                pass
        return written

    def during(self, stop):
        # The node frees space as it compacts its log: take it back at once,
        # so that the disk stays full for the whole hold.
        while not stop.wait(0.05):
            if self._fill():
                self.count("refills")

    def heal(self):
        freed = False
        for path in (self.filler, self.filler and self.filler + "2"):
            if path and os.path.exists(path):
                os.unlink(path)
                freed = True
        self.filler = None
        if freed and self.cluster.alive(self.victim):
            # Let it catch up, then read back what it wrote while full.
            time.sleep(2.0)
            self.cluster.kill(self.victim)
            self.cluster.restart(self.victim)


NEMESES = {cls.name: cls for cls in (
    NoFault, KillLeader, KillFollower, KillAll, PauseLeader, PauseFollower,
    PartitionLeader, PartitionHalves, PartitionOneWay, PartitionFlapping,
    KillOrPartitionLeader, LaggingSnapshot, MembershipChange, DiskFull)}


class Schedule:
    """Runs a nemesis on its own thread between ``start`` and ``end``
    (monotonic times): fault, hold, heal, wait for progress (at most
    ``recover_wait`` s), quiet for 1-3 s, and again."""

    def __init__(self, nemesis, history, start, end, rng, log, recover_wait=12.0):
        self.nemesis = nemesis
        self.history = history
        self.start_at = start
        self.end_at = end
        self.rng = rng
        self.log = log
        self.recover_wait = recover_wait
        self.heals = []            # (fault time, heal time, description)
        self.errors = []
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="nemesis")

    def start(self):
        self.thread.start()

    def stop(self, timeout=60):
        self.stop_event.set()
        self.thread.join(timeout)
        return not self.thread.is_alive()

    def _sleep_until(self, t):
        return not self.stop_event.wait(max(0.0, t - time.monotonic()))

    def _run(self):
        n = self.nemesis
        if not self._sleep_until(self.start_at):
            return
        t0 = self.start_at
        try:
            while time.monotonic() + n.hold[0] < self.end_at and not self.stop_event.is_set():
                at = time.monotonic()
                what = n.fault()
                if what is None:
                    if not self._sleep_until(time.monotonic() + 0.5):
                        break
                    continue
                self.log(f"{at - t0:7.2f}s fault: {what}")
                hold = min(self.rng.uniform(*n.hold), max(0.5, self.end_at - time.monotonic()))
                release = threading.Event()
                during = threading.Thread(target=n.during, args=(release,), daemon=True)
                during.start()
                self.stop_event.wait(hold)
                release.set()
                during.join(10)
                n.heal()
                healed = time.monotonic()
                self.log(f"{healed - t0:7.2f}s heal")
                self.heals.append((at, healed, what))
                # Wait for the cluster to make progress again, then a quiet spell.
                deadline = healed + self.recover_wait
                while time.monotonic() < deadline and not self.stop_event.is_set():
                    if self.history.first_ok_after(healed) is not None:
                        break
                    time.sleep(0.1)
                self._sleep_until(time.monotonic() + self.rng.uniform(1.0, 3.0))
        except Exception as e:
            self.errors.append(f"nemesis {n.name}: {e!r}")
            self.log(f"!! nemesis {n.name} failed: {e!r}")
        finally:
            try:
                n.finish()
            except Exception as e:
                self.errors.append(f"nemesis {n.name} finish: {e!r}")

"""The asyncio forms: awaitable, safe under any running loop, and
cancelling the awaiting side does not disturb the node."""

import asyncio

import pytest

import canonical_raft as raft
from canonical_raft.testing import free_address

pytestmark = pytest.mark.timeout(60)


def test_async_forms_on_a_cluster(cluster):
    c = cluster(3)
    leader = c.leader()
    spare_id = 4

    async def main():
        assert (await leader.wait_for_leader_async(10)).id == leader.id
        assert await leader.apply_async(b"5") == 5
        assert await leader.barrier_async() is None
        # A spare is not caught up, so one that never starts still joins.
        await leader.add_async(spare_id, free_address(), raft.Role.SPARE)
        assert any(s.id == spare_id and s.role == raft.Role.SPARE for s in leader.configuration)
        await leader.remove_async(spare_id)
        assert all(s.id != spare_id for s in leader.configuration)
        follower = next(s.id for s in leader.configuration if s.id != leader.id)
        new_leader = await leader.transfer_async(follower)
        assert new_leader is not None and new_leader.id == follower
        return follower

    follower = asyncio.run(main())
    assert c.node(follower).is_leader or c.leader().id == follower


def test_cancelling_the_awaiting_side_leaves_the_node_alone(cluster):
    c = cluster(1)
    node = c.leader()

    async def main():
        task = asyncio.ensure_future(node.apply_async(b"1"))
        await asyncio.sleep(0)        # submitted, now awaiting the result
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The command was submitted and still applies; the node is fine.
        assert await node.apply_async(b"1") == 2
        waiting = asyncio.ensure_future(node.wait_for_leader_async())
        await asyncio.sleep(0)
        waiting.cancel()
        assert (await node.wait_for_leader_async(5)).id == node.id

    asyncio.run(main())
    assert node.apply(b"1").result(timeout=10) == 3


def test_wait_for_leader_async_times_out_and_refuses_a_closed_node(cluster):
    c = cluster(3, start=False)
    node = c.node(1)
    # Two of its three voters never start: no leader, ever.
    node.bootstrap([raft.Server(1, node.address), raft.Server(2, free_address()),
                    raft.Server(3, free_address())])
    node.start()

    async def main():
        with pytest.raises(TimeoutError):
            await node.wait_for_leader_async(0.3)
        node.close()
        with pytest.raises(raft.ShutdownError):
            await node.wait_for_leader_async(1)

    asyncio.run(main())

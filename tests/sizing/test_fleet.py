"""Total concurrency, cheapest fleet (issue 10 item 1): users spread over replicas, replicas over nodes and zones.

Numbers come from outside the code under test: prices from sizing/data/instances.yaml (us-east-1 on-demand, dated
2026-07-20), shapes from the published config.json files, vLLM's KV formula worked by hand.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings, strategies as st

from sizing.architecture import from_config
from sizing.catalog import load_model_config
from sizing.errors import SizingError
from sizing.planner import Workload, fleet_nodes, plan

GIB = 1024**3
MISTRAL = "mistralai/Mistral-7B-Instruct-v0.3"


def workload(model, max_model_len, concurrency=1, **kw):
    return Workload(model, from_config(load_model_config(model)[0], model), max_model_len, concurrency, **kw)


def test_mistral_32k_for_16_users_is_one_g7e_or_three_g6e_xlarge_not_one_g6e_12xlarge():
    # Issue 10: with one replica on the L40S families the planner lands on a g6e.12xlarge ($10.49264/h). Spread,
    # three g6e.xlarge ($1.861/h each) hold it: $5.583/h. Issue 15 added g7e: one RTX PRO 6000 (94.97 GiB) holds all
    # 16 users for $3.36312/h, cheaper than both.
    one = plan(workload(MISTRAL, 32768, 16))
    assert (one.instance_type, one.replicas, one.fleet_hourly_usd) == ("g7e.2xlarge", 1, 3.36312)
    assert one.memory.max_concurrency >= 16  # 85.47 - 13.50 - ~1 GiB = ~70.9 GiB of KV = 17 requests of 4 GiB
    p = plan(workload(MISTRAL, 32768, 16, max_replicas=100, instance_type="g6e.xlarge"))
    assert (p.instance_type, p.tensor_parallel_size, p.replicas, p.nodes) == ("g6e.xlarge", 1, 3, 3)
    assert p.fleet_hourly_usd == pytest.approx(3 * 1.861) and p.fleet_hourly_usd <= 5.6
    assert p.hourly_usd == 1.861  # hourly_usd stays one instance's price
    assert p.concurrency == 16 and p.concurrency_per_replica == 6  # ceil(16 / 3)
    # By hand (config.json: 32 layers, 8 KV heads, head_dim 4096/32 = 128, bf16; 7,248,023,552 parameters): one
    # 32768-token request needs 2 x 32 x 8 x 128 x 2 B x 32768 = 4 GiB of KV. An L40S (44.39 GiB usable) at
    # utilization 0.9 minus the bf16 weights leaves at most 39.95 - 13.50 = 26.45 GiB: 6 requests fit, 8 do not,
    # so two replicas cannot hold 16 users and three are the fewest.
    kv_per_request = 2 * 32 * 8 * 128 * 2 * 32768 / GIB
    assert kv_per_request == 4.0
    left = 44.39 * 0.9 - 7_248_023_552 * 2 / GIB
    assert 6 * kv_per_request < left < 8 * kv_per_request
    assert 6 <= p.memory.max_concurrency < 8


def test_the_seeds_plans_stay_as_good_with_spreading_allowed():
    # The commit notes: Qwen3-1.7B 8192 x 4 -> g6.xlarge $0.8048/h; Meta-Llama-3-8B-Instruct on Neuron ->
    # inf2.8xlarge ($1.96786/h); Llama-2-13b-chat 4096 x 4 -> g6e.2xlarge ($2.24208/h), and since issue 15 (host
    # memory from how vLLM loads, not the 24.2 GiB checkpoint) the cheaper g6e.xlarge ($1.861/h). One replica each.
    for kw in ({}, {"max_replicas": 100}):
        assert (plan(workload("Qwen/Qwen3-1.7B", 8192, 4, **kw)).instance_type, 0.8048) == ("g6.xlarge", 0.8048)
        neuron = plan(workload("meta-llama/Meta-Llama-3-8B-Instruct", 4096, 10, vendor="neuron", **kw))
        assert (neuron.instance_type, neuron.replicas, neuron.fleet_hourly_usd) == ("inf2.8xlarge", 1, 1.96786)
        llama2 = plan(workload("meta-llama/Llama-2-13b-chat-hf", 4096, 4, **kw))
        assert (llama2.instance_type, llama2.replicas, llama2.fleet_hourly_usd) == ("g6e.xlarge", 1, 1.861)


def test_max_num_seqs_follows_the_replicas_share():
    # Neuron compiles a batch of exactly the replica's share: 10 users over 2 replicas = 5 each.
    p = plan(workload("meta-llama/Meta-Llama-3-8B-Instruct", 4096, 10, vendor="neuron", min_replicas=2, max_replicas=2))
    assert p.replicas == 2 and p.concurrency_per_replica == 5 and p.max_num_seqs == 5
    i = p.engine_args.index("--max-num-seqs")
    assert p.engine_args[i + 1] == "5"
    # GPU: vLLM's default batch cap (256 on a GPU under 70 GiB, engine.yaml) unless the share is larger.
    small = plan(workload("Qwen/Qwen3-0.6B", 1024, 8, max_replicas=4))
    assert small.max_num_seqs == 256
    big = plan(workload("Qwen/Qwen3-0.6B", 1024, 600, min_replicas=2, max_replicas=2))
    assert big.concurrency_per_replica == 300 and big.max_num_seqs == 300


def test_min_replicas_is_a_floor_and_spread_needs_two_nodes_in_two_zones():
    p = plan(workload("Qwen/Qwen3-1.7B", 8192, 4, min_replicas=3, max_replicas=4))
    assert p.replicas == 3 and p.concurrency_per_replica == 2
    assert p.fleet_hourly_usd == pytest.approx(p.nodes * p.hourly_usd)
    ha = plan(workload("Qwen/Qwen3-1.7B", 8192, 4, max_replicas=4, spread_zones=3))
    assert ha.replicas >= 2 and ha.nodes >= 2 and ha.spread_zones == 3
    with pytest.raises(SizingError, match=r"needs at least 2 replicas, and replicas\.max is 1") as err:
        plan(workload("Qwen/Qwen3-1.7B", 8192, 4, spread_zones=3))
    assert err.value.key == "max_replicas"


def test_fleet_nodes_by_hand():
    assert fleet_nodes(3, 1) == 3
    assert fleet_nodes(3, 4) == 1
    assert fleet_nodes(2, 4, zones=3) == 2  # one replica in each of two zones
    assert fleet_nodes(4, 2, zones=3) == 3  # 2 + 1 + 1 replicas: 1 + 1 + 1 nodes
    assert fleet_nodes(8, 2, zones=2) == 4
    assert fleet_nodes(0, 2) == 0


def test_the_price_cap_is_the_fleets():
    # One g7e.2xlarge ($3.36312/h) fits under $4/h; under $3/h the cheapest fleet is above the cap, and the error
    # says that (not the cheapest candidate's memory problem).
    assert plan(workload(MISTRAL, 32768, 16, max_replicas=100, max_hourly_usd=4.0)).fleet_hourly_usd <= 4.0
    with pytest.raises(SizingError, match=r"maxHourlyUsd cap of \$3/h: the cheapest is 1 replica on 1 x g7e\.2xlarge"):
        plan(workload(MISTRAL, 32768, 16, max_replicas=100, max_hourly_usd=3.0))


def test_a_pinned_instance_is_pinned_and_the_cheaper_fleet_is_named():
    p = plan(workload("Qwen/Qwen3-1.7B", 8192, 4, instance_type="g6.2xlarge"))
    assert p.pinned and "cheapest" not in p.explanation.split("Cheaper:")[0]
    assert "g6.2xlarge is pinned (instanceType), not chosen" in p.explanation
    assert "Cheaper: 1 replica on 1 x g6.xlarge at TP 1, $0.8048/h" in p.explanation
    assert "unset instanceType to let the planner choose" in p.explanation
    same = plan(workload("Qwen/Qwen3-1.7B", 8192, 4, instance_type="g6.xlarge"))
    assert same.cheapest_alternative is None and "also the cheapest NVIDIA fleet" in same.explanation


MODELS = ["Qwen/Qwen3-0.6B", "Qwen/Qwen3-1.7B", MISTRAL, "meta-llama/Llama-3.1-8B"]


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(MODELS), st.sampled_from([2048, 8192, 32768]), st.integers(1, 40), st.integers(1, 40),
       st.integers(1, 8))
def test_more_users_never_cost_less_and_the_fleet_holds_them(model, length, a, b, max_replicas):
    few, many = sorted((a, b))

    def fleet(users):
        try:
            return plan(workload(model, length, users, max_replicas=max_replicas))
        except SizingError:
            return None

    p, q = fleet(few), fleet(many)
    for users, r in ((few, p), (many, q)):
        if r is not None:
            assert r.replicas * r.concurrency_per_replica >= users
            assert r.concurrency_per_replica == math.ceil(users / r.replicas)
            assert r.memory.max_concurrency >= r.concurrency_per_replica
            assert 1 <= r.replicas <= max_replicas
            assert r.nodes == math.ceil(r.replicas / r.replicas_per_node)
            assert r.fleet_hourly_usd == pytest.approx(r.nodes * r.hourly_usd)
    if q is not None:
        assert p is not None and p.fleet_hourly_usd <= q.fleet_hourly_usd + 1e-9

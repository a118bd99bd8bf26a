"""What a results file says of the machine (`recurrent_zoo.environment`)."""

from recurrent_zoo.environment import cores_text, cpu_features, machine_info

# Flags lines as two of the hosts these benchmarks ran on print them (cut).
ZEN3 = "processor\t: 0\nflags\t\t: fpu sse sse2 avx fma avx2 bmi2\n"
ZEN4 = "flags\t\t: avx avx2 avx512f avx512bw avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags\t\t: avx2 avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"


def test_cpu_features_name_the_vector_extensions_from_the_flags():
    assert cpu_features(ZEN3) == "AVX2"
    assert cpu_features(ZEN4) == "AVX2, AVX-512, AVX512-BF16"
    assert cpu_features(SAPPHIRE_RAPIDS) == "AVX2, AVX-512, AVX512-BF16, AMX-BF16"
    assert cpu_features("flags\t: fpu sse\n") == ""
    assert cpu_features("no flags line\n") == ""


def test_cores_text_adds_the_features_only_where_recorded():
    assert cores_text({"cpu_count": 2, "cpu_features": "AVX2"}) == "2 cores; AVX2"
    assert cores_text({"cpu_count": 2, "cpu_features": ""}) == "2 cores"
    assert cores_text({"cpu_count": 2}) == "2 cores"  # results from before


def test_machine_info_records_this_machines_features():
    assert machine_info()["cpu_features"] == cpu_features()

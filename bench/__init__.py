"""What cni-sysctl costs a container start, measured through the real libcni (issues 4 and 10).

    sudo .venv/bin/python -m bench [--quick] [--cycles N] [--burst N] [--import-runs N] [--daemon-cycles N]
                                   [--json FILE]

Run from the repository root. bench/README.md explains the method and every line printed. One
job per module:

    cli         the edge: arguments, signals, stdout/stderr, exit status
    run         one run: set up, measure the sections in order, tear down
    world       the throwaway netns and temporary directory, and their removal
    spawn       posix_spawn + wait4, and the probe that measures wall, CPU and RSS
    modes       install modes of cni-sysctl (the direct launcher, daemon mode), with their hooks
    scenarios   what is measured, as tables: chains, spawns, direct invocations, ratios
    chains      sections 1, 2, 4: the chains through cnitool, interleaved and in bursts
    direct      section 3: the plugin process alone, and the cost per key
    importtime  section 5: python -X importtime
    daemonmem   section 6: the daemon's memory over its calls
    stats       medians, percentiles, paired differences
    targets     section 7: the targets as a table, decided from the results
    results     the JSON document: schema, writer, reader
    report      the text report, rendered from the results
    readme      README's Performance block, generated from the results
    machine     the header's facts
"""

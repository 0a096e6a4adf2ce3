"""`homenode sweep`: many simulation cases from one spec, on a local process pool or a
Dask cluster, stored as each one finishes, summed up in one table and one report.

* ``spec``     -- the sweep spec (TOML): host shapes, trace sets, scenario sets, a grid;
* ``grouping`` -- host-sized groups of a trace set's VMs, as a cluster spreads them;
* ``cases``    -- a spec expanded into cases, each keyed by a content hash;
* ``runner``   -- one case: its scenario parsed on the worker and ``simulate`` run;
* ``store``    -- the per-case records, written as they complete (resume reads them);
* ``executors``-- where cases run: in-process, a local process pool, or Dask;
* ``table``    -- the results table (Parquet, CSV) and the win/loss counts;
* ``report``   -- ``report.html``.
"""

"""Usage metering: records, cost, and the ledger that loses none of them.

``records`` (the usage record and how it is read from upstream usage), ``cost`` (cost and billed
amount in ``Decimal``), ``sink`` (the ``UsageSink`` protocol), ``file_sink`` (the embedded ledger),
``postgres`` (the shared ledger; the only module that imports asyncpg), ``migrations`` (its
versioned schema), ``spill`` (the durable local overflow), ``ledger`` (bounded queue, batched
writes, spill and replay) and ``report`` (usage totals in the platform's report shape).
This package knows nothing of auth, limits, PHI or upstreams: the pipeline glues it in.
"""

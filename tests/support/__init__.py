"""What test modules share (never a test itself; see tests/README.md).

harness      settings, enqueue, a running worker, eventually, ledger reads, the dispatcher process
configs      provider entries for the fakes, TOML texts, small Settings
health       two simulated providers behind a small breaker, for the health stores
clock        `Clock`, virtual time for the health stores and the ledger
providers    one full email; an SES identity verified on moto
api          the intake API served on a free port (`Api`) and its request helpers
metrics      a /metrics page read into series
scripted     `ScriptedProvider`, a provider that answers from a script
sqs_gateway  an SQS proxy whose SendMessageBatch a test can make fail
tcp_proxy    `TcpProxy`, a TCP link a test can cut and restore
"""

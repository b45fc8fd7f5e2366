"""The attack suite behind ``splitvault attack`` and ``pytest -m security``.

One module per scenario of threat_model.md (``device_theft``, ``server_breach``,
``at_rest``, ``protocol``, ``double_charge``, ``leakage``, ``audit_log``, ``fuzz``,
``incidents``, ``stranger``, ..., ``device_copy``, ``server_backup``), each a set of
``attack(lab) -> AttackResult`` functions and a ``run(deployment, options)``;
``_harness`` the deployment, lab and verdicts; ``runner`` the command; ``scan`` the
byte scanner.
"""

"""user_sync's pure logic: the provisioning state machine (`provisioning`) and the
password generator (`password`). No I/O, no broker, no session."""

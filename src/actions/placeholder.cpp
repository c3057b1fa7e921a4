// actions stage: SMS outbox and delivery land with the rules issue.

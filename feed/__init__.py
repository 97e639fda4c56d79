"""The kafkaFeed feed: its contract with the router and its lifecycle, in one place (DESIGN.md 6).

Shipped in every action folder (actions/build.py) and in the consumer image, which reads the
records. Importing it has no side effects. Modules (imports flow downwards only)::

    errors     FeedError (a refusal with its HTTP status); kafka-python errors mapped in one place
    options    the table of feed options (parameter, field, READ key, validation, texts) and Options
    records    the subscription record format on the compacted subscriptions topic: keys, values
    lookup     the routers' read API over their subscriptions table: path, answer, HMAC authentication
    store      SubscriptionStore: what the lifecycle needs of that topic; MemoryStore, KafkaStore, RouterStore
    lifecycle  CREATE, READ, UPDATE, DELETE, PAUSE, UNPAUSE over a store and the caller's checks
"""

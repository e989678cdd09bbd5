"""Live ingest over MQTT: oneM2M (TS-0010) and FIWARE IoT-Agent JSON into the lake.

``settings`` reads a source's ``[sources.NAME.mqtt]`` table, ``onem2m`` and ``iotagent`` parse
messages into observations, ``observe`` turns those into engine Batches, and ``client`` runs
the paho-mqtt clients, the micro-batches and the acknowledgements (``hubctl listen``).
"""

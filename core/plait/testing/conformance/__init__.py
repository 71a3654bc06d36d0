"""Conformance servers: small stdlib HTTP STAND-INS for services no engine can run here.

Pinecone is a SaaS (its local emulator is Docker-only) and Marqo ships only as a Docker image,
so plait's contract runs for those retrievers drive the REAL SDKs against these servers,
which implement exactly the REST subset the SDKs call. They are stand-ins, not emulators:
each module's docstring lists what it implements and what it does not. The Docker suite
(tests/docker) runs the same contract against the real images wherever Docker exists.

Third parties can use them in their own tests::

    from plait.testing.conformance import PineconeConformanceServer

    with PineconeConformanceServer() as server:
        pc = pinecone.Pinecone(api_key="test", host=server.url)
"""

from plait.testing.conformance.marqo_server import MarqoConformanceServer
from plait.testing.conformance.pinecone_server import PineconeConformanceServer

__all__ = ["MarqoConformanceServer", "PineconeConformanceServer"]

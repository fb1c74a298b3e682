"""APIM policies certgate refuses by name, each with the reason a user reads when saving.

A document naming one of these is refused rather than run without it (an ignored policy would
silently skip an authentication, a limit or a log). Registered element classes take precedence:
a name listed here and implemented later simply stops being refused.
"""

from __future__ import annotations

_MANAGED_IDENTITY = (
    "it obtains tokens through an Azure managed identity, which only Azure's hosting provides; "
    "fetch the token with send-request and set the Authorization header instead."
)
_EVENT_HUBS = "it writes to an Azure Event Hubs logger, which certgate has no connection to."
_OPENAI = (
    "it meters, caches or filters Azure OpenAI / LLM traffic with Azure services (token "
    "accounting, Azure AI Content Safety, embeddings for semantic caching)."
)
_DAPR = "it calls a Dapr sidecar, which only APIM's self-hosted gateway on Dapr provides."
_SERVICE_BUS = "it sends to Azure Service Bus, which certgate has no connection to."
_GRAPHQL = "it belongs to APIM's synthetic GraphQL APIs (resolvers), which certgate does not host."
_CREDENTIALS = "it reads APIM's credential manager (Azure-hosted OAuth connections)."
_SERVICE_FABRIC = (
    "it resolves the backend through an Azure Service Fabric cluster's naming service (a "
    "Service Fabric backend entity), which certgate has no connection to; use base-url or an "
    "HTTP backend entity instead."
)
_NOT_APIM = "APIM has no policy of that name"

REFUSED_POLICIES: dict[str, str] = {
    "authentication-managed-identity": _MANAGED_IDENTITY,
    "log-to-eventhub": _EVENT_HUBS,
    "trace-to-eventhub": _EVENT_HUBS,
    "azure-openai-emit-token-metric": _OPENAI,
    "azure-openai-semantic-cache-lookup": _OPENAI,
    "azure-openai-semantic-cache-store": _OPENAI,
    "azure-openai-token-limit": _OPENAI,
    "llm-content-safety": _OPENAI,
    "llm-emit-token-metric": _OPENAI,
    "llm-semantic-cache-lookup": _OPENAI,
    "llm-semantic-cache-store": _OPENAI,
    "llm-token-limit": _OPENAI,
    "emit-token-metric": _OPENAI,
    "publish-to-dapr": _DAPR,
    "publish-to-darp": _DAPR,
    "invoke-dapr-binding": _DAPR,
    "invoke-darp-binding": _DAPR,
    "send-service-bus-message": _SERVICE_BUS,
    "cosmosdb-data-source": _GRAPHQL,
    "http-data-source": _GRAPHQL,
    "sql-data-source": _GRAPHQL,
    "set-graphql-resolver": _GRAPHQL,
    "publish-event": _GRAPHQL,
    "validate-graphql-request": _GRAPHQL,
    "get-authorization-context": _CREDENTIALS,
    # Names that are not APIM policies, though documents use them.
    "set-backend": f"{_NOT_APIM}; set-backend-service changes the backend.",
    "cache-value": f"{_NOT_APIM} (the policy toolkit has one); use cache-lookup-value and "
    "cache-store-value.",
}

# What only Azure itself provides: the documents these block are the save level's ceiling.
AZURE_ONLY_REASONS = frozenset(
    {
        _MANAGED_IDENTITY,
        _EVENT_HUBS,
        _OPENAI,
        _DAPR,
        _SERVICE_BUS,
        _GRAPHQL,
        _CREDENTIALS,
        _SERVICE_FABRIC,
    }
)

# Attributes of implemented elements that select an Azure-only variant of them.
REFUSED_ATTRIBUTES: dict[tuple[str, str], str] = {
    ("set-backend-service", "dapr-app-id"): _DAPR,
    ("set-backend-service", "dapr-method"): _DAPR,
    ("set-backend-service", "dapr-namespace"): _DAPR,
    ("set-backend-service", "sf-resolve-condition"): _SERVICE_FABRIC,
    ("set-backend-service", "sf-service-instance-name"): _SERVICE_FABRIC,
    ("set-backend-service", "sf-partition-key"): _SERVICE_FABRIC,
    ("set-backend-service", "sf-listener-name"): _SERVICE_FABRIC,
    ("set-backend-service", "sf-replica-type"): _SERVICE_FABRIC,
}


def policy_refusal(name: str) -> str | None:
    """The message refusing policy `name`, or None when certgate does not know the name."""
    reason = REFUSED_POLICIES.get(name)
    return None if reason is None else f"Policy '{name}' is not supported by certgate: {reason}"


def attribute_refusal(element: str, attribute: str) -> str | None:
    """The message refusing `attribute` of `element`, or None when it is simply unknown."""
    reason = REFUSED_ATTRIBUTES.get((element, attribute))
    if reason is None:
        return None
    return f"Attribute '{attribute}' of '{element}' is not supported by certgate: {reason}"

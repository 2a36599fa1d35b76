"""GraphQL at /graphql: Parse Server 9.10's generated schema over the same store (GRAPHQL.md)."""

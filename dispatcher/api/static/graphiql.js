// GraphiQL 3 on /graphql, with React 18 from this server (no CDN). Put the API key in the
// headers tab: {"Authorization": "Bearer <key>"}.
const params = new URLSearchParams(window.location.search);
const fetcher = GraphiQL.createFetcher({ url: "/graphql" });
const root = ReactDOM.createRoot(document.getElementById("graphiql"));
root.render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultEditorToolsVisibility: true,
    defaultQuery: params.get("query") || undefined,
    headers: params.get("headers") || '{"Authorization": "Bearer <your key>"}',
    shouldPersistHeaders: false,
  })
);

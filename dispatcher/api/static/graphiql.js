// GraphiQL 3 on /graphql, with React 18 from this server (no CDN). Queries need the API key:
// put {"Authorization": "Bearer <key>"} in the Headers tab. `#query=` pre-fills the editor
// (a fragment: `?query=` on /graphql runs the query instead of opening GraphiQL).
const params = new URLSearchParams(window.location.hash.slice(1));
const fetcher = GraphiQL.createFetcher({ url: "/graphql" });
const root = ReactDOM.createRoot(document.getElementById("graphiql"));
root.render(
  React.createElement(GraphiQL, {
    fetcher,
    defaultEditorToolsVisibility: true,
    defaultQuery: params.get("query") || undefined,
    shouldPersistHeaders: false,
  })
);

/* Editor helpers shared by the LwM2M nodes: suggestions for the endpoint and path fields, from the
 * admin routes the lwm2m-server node serves under /lwm2m/. Loaded once by each node's .html. */
(function () {
  if (window.LwM2MEditor) return;
  var modelPaths = null;

  function serverId() {
    var value = $('#node-input-server').val();
    return value && value !== '_ADD_' ? value : null;
  }

  function suggest(input, source) {
    if (!input.length || !input.autocomplete) return;
    input.autocomplete({ minLength: 0, source: source, delay: 0 }).on('focus', function () {
      input.autocomplete('search', input.val());
    });
  }

  function filter(items, term) {
    var needle = (term || '').toLowerCase();
    return items.filter(function (item) {
      return (item.label || item).toLowerCase().indexOf(needle) >= 0;
    });
  }

  window.LwM2MEditor = {
    /** Suggest the registered endpoints in #node-input-endpoint and the model's paths in #node-input-path. */
    attach: function () {
      suggest($('#node-input-endpoint'), function (request, respond) {
        var id = serverId();
        if (!id) return respond([]);
        $.getJSON('lwm2m/servers/' + encodeURIComponent(id) + '/endpoints')
          .done(function (endpoints) {
            respond(filter(endpoints, request.term));
          })
          .fail(function () {
            respond([]);
          });
      });
      suggest($('#node-input-path'), function (request, respond) {
        var answer = function () {
          respond(
            filter(modelPaths, request.term)
              .slice(0, 200)
              .map(function (item) {
                return { label: item.label, value: item.path };
              })
          );
        };
        if (modelPaths) return answer();
        $.getJSON('lwm2m/model')
          .done(function (paths) {
            modelPaths = paths;
            answer();
          })
          .fail(function () {
            respond([]);
          });
      });
    },
  };
})();

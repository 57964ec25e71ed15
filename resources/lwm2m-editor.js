/* Editor helpers shared by the LwM2M nodes: typedInputs for the per-message settings, with
 * completions for the endpoint and path fields from the admin routes the lwm2m-server node serves
 * under /lwm2m/. Loaded once by each node's .html. */
(function () {
  if (window.LwM2MEditor) return;
  var modelPaths = null;
  var typesOf = {}; // field -> its typedInput types, the literal one first
  // looked up per message by the runtime (nodes/settings.ts)
  var LOOKUPS = ['msg', 'flow', 'global', 'env', 'jsonata'];
  // a value to write: every type Node-RED evaluates (RED.util.evaluateNodeProperty)
  var VALUE_TYPES = ['msg', 'flow', 'global', 'str', 'num', 'bool', 'json', 'bin', 'env', 'jsonata'];
  var FORMATS = [
    { value: 'auto', label: 'auto' },
    { value: 'senml-cbor', label: 'SenML CBOR' },
    { value: 'senml-json', label: 'SenML JSON' },
    { value: 'tlv', label: 'TLV' },
    { value: 'lwm2m-cbor', label: 'LwM2M CBOR' },
    { value: 'oma-json', label: 'OMA JSON' },
    { value: 'text', label: 'text' },
    { value: 'opaque', label: 'opaque' },
  ];

  function serverId() {
    var value = $('#node-input-server').val();
    return value && value !== '_ADD_' ? value : null;
  }

  function filter(items, term) {
    var needle = (term || '').toLowerCase();
    return items.filter(function (item) {
      return item.label.toLowerCase().indexOf(needle) >= 0;
    });
  }

  /** The registered endpoints of the chosen server node, as completions. */
  function endpoints(term, done) {
    var id = serverId();
    if (!id) return done([]);
    $.getJSON('lwm2m/servers/' + encodeURIComponent(id) + '/endpoints')
      .done(function (names) {
        done(filter(names.map(function (name) {
          return { value: name, label: name };
        }), term));
      })
      .fail(function () {
        done([]);
      });
  }

  /** The model's objects and resources ("Device / Battery Level — /3/0/9"), as completions. */
  function paths(term, done) {
    var answer = function () {
      done(filter(modelPaths, term).slice(0, 200).map(function (item) {
        return { value: item.path, label: item.label };
      }));
    };
    if (modelPaths) return answer();
    $.getJSON('lwm2m/model')
      .done(function (items) {
        modelPaths = items;
        answer();
      })
      .fail(function () {
        done([]);
      });
  }

  var COMPLETIONS = { endpoint: endpoints, path: paths };

  /** Node-RED's string type, with completions for the fields that have them. */
  function textType(field) {
    if (!COMPLETIONS[field]) return 'str';
    return { value: 'str', label: 'string', icon: 'red/images/typedInput/az.svg', autoComplete: COMPLETIONS[field] };
  }

  window.LwM2MEditor = {
    FORMATS: FORMATS,

    /**
     * A text setting (endpoint, path, arguments) as a typedInput: text, or msg/flow/global/env/JSONata.
     * The endpoint offers the registered endpoints as you type, the path the model's resources.
     */
    text: function (field) {
      typesOf[field] = [textType(field)].concat(LOOKUPS);
      $('#node-input-' + field).typedInput({ default: 'str', types: typesOf[field], typeField: '#node-input-' + field + 'Type' });
    },

    /** The value to write: any typedInput type, `msg.payload` by default and for nodes saved without one. */
    value: function (node, field) {
      var input = $('#node-input-' + field);
      var saved = node[field + 'Type'] !== undefined && node[field + 'Type'] !== '';
      if (!saved) {
        $('#node-input-' + field + 'Type').val('msg');
        input.val('payload');
      }
      input.typedInput({ default: 'msg', types: VALUE_TYPES, typeField: '#node-input-' + field + 'Type' });
    },

    /** A setting chosen from a list (operation, format), or taken from msg/flow/global/env/JSONata. */
    choice: function (field, label, options) {
      var input = $('#node-input-' + field);
      typesOf[field] = [{ value: 'choice', label: label, icon: 'fa fa-list-ul', options: options }].concat(LOOKUPS);
      input.typedInput({ default: 'choice', types: typesOf[field], typeField: '#node-input-' + field + 'Type' });
      // a saved literal that is no longer offered (or none at all) shows the first option
      var values = options.map(function (option) {
        return option.value;
      });
      if (input.typedInput('type') === 'choice' && values.indexOf(input.typedInput('value')) < 0) input.typedInput('value', values[0]);
    },

    /** Offer only the literal type of a field (on), or all of them again (off). */
    literalOnly: function (field, on) {
      $('#node-input-' + field).typedInput('types', on ? typesOf[field].slice(0, 1) : typesOf[field]);
    },

    /** Completions in the plain endpoint and path fields: the filters of register-in, notify-in, send-in. */
    complete: function () {
      Object.keys(COMPLETIONS).forEach(function (field) {
        var input = $('#node-input-' + field);
        if (input.length && !input.hasClass('red-ui-typedInput')) input.autoComplete({ search: COMPLETIONS[field], minLength: 0 });
      });
    },

    /** A setting for a node's label: the literal, or where it is looked up (`msg.path`). */
    describe: function (node, field) {
      var type = node[field + 'Type'];
      var value = node[field] || '';
      if (!type || type === 'str' || type === 'choice') return value;
      return type === 'jsonata' ? 'expression' : type + '.' + value;
    },
  };
})();

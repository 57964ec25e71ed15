/* Editor helpers shared by the LwM2M nodes: typedInputs for the per-message settings, with
 * completions for the endpoint and path fields from the admin routes the lwm2m-server node serves
 * under /lwm2m/ (nodes/admin.ts), validators for paths and endpoints, and the choice of the server
 * node. Loaded once by each node's .html. */
(function () {
  if (window.LwM2MEditor) return;
  var typesOf = {}; // field -> its typedInput types, the literal one first
  var answers = {}; // admin route -> its answer, for the edit dialog that is open
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
  // the node's own texts (locales/en-US/<type>.json, "errors"), these when a node has none
  var ERRORS = {
    path: 'not an LwM2M path: __path__ (such as /3/0/9: object, instance, resource, resource instance; each 0-65535)',
    resourcePath: 'Execute needs a resource path such as /3/0/4, not __path__',
    onePath: 'one path only, not a list',
    endpoint: 'an endpoint name has no spaces and none of & ? # " < > \\',
    endpointList: 'a list of endpoints: names or patterns (sim-*) separated by commas, or a JSON array of them; not __value__',
    number: 'a number of at least __min__, or empty',
    wholeNumber: 'a whole number of at least __min__, or empty',
  };
  var PATH = /^\/(0|[1-9][0-9]{0,4})(\/(0|[1-9][0-9]{0,4})){0,3}$/;
  var ENDPOINT_FORBIDDEN = /[\s&?#"<>\\]/;

  function serverId() {
    var value = $('#node-input-server').val();
    return value && value !== '_ADD_' ? value : null;
  }

  /** Node-RED shows a validator's text as HTML: what the user typed is escaped. */
  function escape(value) {
    return String(value).replace(/[&<>"']/g, function (c) {
      return '&#' + c.charCodeAt(0) + ';';
    });
  }

  function text(node, key, substitutions) {
    substitutions = substitutions || {};
    Object.keys(substitutions).forEach(function (name) {
      substitutions[name] = escape(substitutions[name]);
    });
    var full = node.type + '.errors.' + key;
    var translated = node && typeof node._ === 'function' ? node._(full, substitutions) : full;
    if (translated !== full) return translated;
    return ERRORS[key].replace(/__(\w+)__/g, function (_, name) {
      return substitutions[name] !== undefined ? substitutions[name] : '';
    });
  }

  /** A field's value and type: the edit dialog's while it is open, else the node's own. */
  function current(node, field) {
    var input = $('#node-input-' + field);
    return input.length ? input.val() : node[field];
  }
  function typeOf(node, typeField) {
    return (typeField && (current(node, typeField) || node[typeField])) || 'str';
  }

  /** `/3/0/9`: 1 to 4 ids in 0..65535 without leading zeros, as lib/path.ts parses them. */
  function isPath(path) {
    return (
      PATH.test(path) &&
      path
        .split('/')
        .slice(1)
        .every(function (id) {
          return Number(id) <= 65535;
        })
    );
  }

  function getJSON(url, done) {
    if (answers[url]) return done(answers[url]);
    $.getJSON(url)
      .done(function (body) {
        answers[url] = body;
        done(body);
      })
      .fail(function () {
        done([]);
      });
  }

  function filter(items, term) {
    var needle = (term || '').toLowerCase();
    return items.filter(function (item) {
      return (item.label + ' ' + (item.detail || '')).toLowerCase().indexOf(needle) >= 0;
    });
  }

  /**
   * The registered endpoints of the chosen server node, as completions. In a comma-separated list
   * the last entry is completed and the ones before it kept.
   */
  function endpoints(term, done) {
    var id = serverId();
    if (!id) return done([]);
    var cut = (term || '').lastIndexOf(',');
    var before = cut >= 0 ? term.slice(0, cut + 1) + ' ' : '';
    var last = (cut >= 0 ? term.slice(cut + 1) : term || '').trim();
    $.getJSON('lwm2m/servers/' + encodeURIComponent(id) + '/endpoints')
      .done(function (names) {
        done(filter(names.map(function (name) {
          return { value: before + name, label: name };
        }), last));
      })
      .fail(function () {
        done([]);
      });
  }

  /**
   * The entries of an endpoint text as the runtime reads it (nodes/settings.ts targetOf): a JSON
   * array, or names and patterns separated by commas; null for a JSON text that is not an array
   * of names.
   */
  function endpointEntries(value) {
    var text = String(value || '').trim();
    if (text.charAt(0) === '[') {
      try {
        var list = JSON.parse(text);
        if (!Array.isArray(list)) return null;
        for (var i = 0; i < list.length; i++) if (typeof list[i] !== 'string' && typeof list[i] !== 'number') return null;
        return list.map(function (entry) {
          return String(entry).trim();
        });
      } catch (e) {
        return null;
      }
    }
    return text.split(',').map(function (entry) {
      return entry.trim();
    });
  }

  /** The one device the endpoint field names as text (not a pattern with `*` or a list), if any. */
  function chosenEndpoint() {
    var input = $('#node-input-endpoint');
    if (!input.length) return null;
    var typed = input.hasClass('red-ui-typedInput');
    if (typed && input.typedInput('type') !== 'str') return null;
    var name = String(typed ? input.typedInput('value') : input.val()).trim();
    return name && name.indexOf('*') < 0 && name.indexOf(',') < 0 && name.charAt(0) !== '[' ? name : null;
  }

  /**
   * Where the path completions come from: the chosen device's registration (its instances first)
   * on the chosen server, else that server's model (with its user models), else the bundled model.
   */
  function pathsUrl() {
    var id = serverId();
    if (!id) return 'lwm2m/model';
    var endpoint = chosenEndpoint();
    var server = 'lwm2m/servers/' + encodeURIComponent(id);
    return endpoint ? server + '/devices/' + encodeURIComponent(endpoint) + '/paths' : server + '/paths';
  }

  /** `Sensor Value` for a resource (its object is in its path), `Temperature / instance 0` for the rest. */
  function name(item) {
    var full = item.label.replace(/ — \S+$/, '');
    return item.path.split('/').length > 3 ? full.slice(full.lastIndexOf(' / ') + 3) : full;
  }

  /**
   * A completion on one line of the narrow menu: the path, the name (cut short when it must be;
   * the whole label on hover), and for a resource its type and operations, `Float · R`. The
   * device's own paths are bold.
   */
  function pathLabel(item) {
    var line = $('<div/>', { class: 'lwm2m-path-completion' + (item.registered ? ' lwm2m-path-registered' : ''), title: item.label, style: 'display:flex; gap:8px; align-items:baseline' });
    $('<span/>', { class: 'lwm2m-path-path', style: 'flex:none' + (item.registered ? '; font-weight:bold' : '') }).text(item.path).appendTo(line);
    $('<span/>', { class: 'lwm2m-path-name', style: 'flex:1; min-width:0; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; opacity:0.8' })
      .text(name(item))
      .appendTo(line);
    if (item.detail) $('<span/>', { class: 'lwm2m-path-detail', style: 'flex:none; white-space:nowrap; opacity:0.7' }).text(item.detail).appendTo(line);
    return line;
  }

  /**
   * The path completions. In a comma-separated list (Read-Composite, Observe-Composite) the last
   * path is completed and the ones before it kept.
   */
  function paths(term, done) {
    var cut = (term || '').lastIndexOf(',');
    var before = cut >= 0 ? term.slice(0, cut + 1) + ' ' : '';
    var last = (cut >= 0 ? term.slice(cut + 1) : term || '').trim();
    getJSON(pathsUrl(), function (items) {
      done(filter(items, last).slice(0, 200).map(function (item) {
        return { value: before + item.path, label: pathLabel(item) };
      }));
    });
  }

  var COMPLETIONS = { endpoint: endpoints, path: paths };

  /** Node-RED's string type, with completions for the fields that have them. */
  function textType(field) {
    if (!COMPLETIONS[field]) return 'str';
    return { value: 'str', label: 'string', icon: 'red/images/typedInput/az.svg', autoComplete: COMPLETIONS[field] };
  }

  /** The lwm2m-server config nodes a node on workspace `z` can use, leaving out disabled ones. */
  function servers(z) {
    var found = [];
    RED.nodes.eachConfig(function (config) {
      if (config.type === 'lwm2m-server' && !config.d && (!config.z || config.z === z)) found.push(config);
    });
    return found;
  }

  window.LwM2MEditor = {
    FORMATS: FORMATS,

    /**
     * A text setting (endpoint, path, arguments) as a typedInput: text, or msg/flow/global/env/JSONata.
     * The endpoint offers the registered endpoints as you type, the path the chosen device's paths.
     */
    text: function (field) {
      answers = {};
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
      answers = {};
      Object.keys(COMPLETIONS).forEach(function (field) {
        var input = $('#node-input-' + field);
        if (input.length && !input.hasClass('red-ui-typedInput')) input.autoComplete({ search: COMPLETIONS[field], minLength: 0 });
      });
    },

    /**
     * `onadd`: a node dropped into a flow uses the only server node there is. Node-RED leaves a new
     * node's config field on "none" even then, and the endpoint and path suggestions need a server.
     */
    onadd: function () {
      if (this.server) return;
      var found = servers(this.z);
      if (found.length !== 1) return;
      this.server = found[0].id;
      // a pasted node is in the flow already: count it among the server's users as Node-RED does
      if (RED.nodes.node(this.id) && RED.nodes.updateConfigNodeUsers) RED.nodes.updateConfigNodeUsers(this);
    },

    /** In oneditprepare: a node without a server (an imported one) gets the only one there is. */
    preselectServer: function (node) {
      var select = $('#node-input-server');
      if (node.server || select.val() !== '_ADD_') return;
      var found = servers(node.z);
      if (found.length === 1 && select.find('option[value="' + found[0].id + '"]').length) select.val(found[0].id).trigger('change');
    },

    /**
     * A `defaults` validator of a path field: each path (several, comma-separated, when `options.list`
     * is true or a function of the node that says so) must be an LwM2M path; `options.resource` asks
     * for /object/instance/resource.
     * Only text is checked: msg, flow, ... settings are Node-RED's expressions. Empty is valid: the
     * node then takes msg.path.
     */
    pathValidator: function (typeField, options) {
      options = options || {};
      return function (value, opt) {
        var type = typeOf(this, typeField);
        if (type !== 'str') return LOOKUPS.indexOf(type) >= 0 ? RED.utils.validateTypedProperty(value, type, opt) : true;
        var list = String(value || '')
          .split(',')
          .map(function (path) {
            return path.trim();
          });
        if (list.length === 1 && list[0] === '') return true;
        for (var i = 0; i < list.length; i++) {
          if (!isPath(list[i])) return text(this, 'path', { path: JSON.stringify(list[i]) });
          if (options.resource && list[i].split('/').length !== 4) return text(this, 'resourcePath', { path: list[i] });
        }
        var several = typeof options.list === 'function' ? options.list.call(this) : Boolean(options.list);
        if (list.length > 1 && !several) return text(this, 'onePath');
        return true;
      };
    },

    /** The operation a node is set to while its dialog is open (or saved), for validators. */
    operation: function (node) {
      return typeOf(node, 'operationType') === 'choice' ? current(node, 'operation') : null;
    },

    /**
     * A `defaults` validator of an endpoint (or endpoint filter) field: text without spaces and
     * none of & ? # " < > \. Empty is valid: the node then takes msg.endpoint (or every device).
     * With `options.list` (read, write, execute, observe) a pattern or list of devices is fine too:
     * names and patterns separated by commas (spaces around them allowed), or a JSON array.
     */
    endpointValidator: function (typeField, options) {
      options = options || {};
      return function (value, opt) {
        var type = typeOf(this, typeField);
        if (type !== 'str') return LOOKUPS.indexOf(type) >= 0 ? RED.utils.validateTypedProperty(value, type, opt) : true;
        if (!options.list) return ENDPOINT_FORBIDDEN.test(String(value || '')) ? text(this, 'endpoint') : true;
        var entries = endpointEntries(value);
        if (entries === null) return text(this, 'endpointList', { value: value });
        // a single entry: empty is msg.endpoint; several: none may be empty (`a,,b`)
        if (entries.length === 1 && entries[0] === '') return true;
        for (var i = 0; i < entries.length; i++) {
          if (entries[i] === '') return text(this, 'endpointList', { value: value });
          if (ENDPOINT_FORBIDDEN.test(entries[i])) return text(this, 'endpoint');
        }
        return true;
      };
    },

    /**
     * A `defaults` validator of a number field (concurrency, ttl): empty (the message's, else the
     * default), or a number of at least `min`; `whole` asks for an integer.
     */
    numberValidator: function (min, whole) {
      // two parameters: Node-RED then takes a returned text as "invalid, because ..."
      return function (value, opt) {
        var raw = String(value === undefined || value === null ? '' : value).trim();
        if (raw === '') return true;
        var number = Number(raw);
        var good = isFinite(number) && number >= min && (!whole || Math.floor(number) === number);
        return good ? true : text(this, whole ? 'wholeNumber' : 'number', { min: min });
      };
    },

    /** The two outputs of read, write, execute and observe, labelled from the node's texts. */
    outputLabels: function (index) {
      return this._(this.type + '.outputs.' + (index === 0 ? 'devices' : 'summary'));
    },

    /**
     * A PSK table in an edit dialog (the server node's and the bootstrap node's Devices): a row per
     * device with its endpoint, identity and key. The rows come from the `psk` text credential; a
     * stored key never comes to the editor, so its field stays empty ("key: unchanged") and keeps
     * it. `prefix` is the dialog's field prefix (`node-config-input` or `node-input`).
     */
    pskList: function (node, prefix) {
      var credentials = node.credentials || {};
      var rows = [];
      try {
        rows = JSON.parse(credentials.psk || '[]');
      } catch (error) {
        rows = [];
      }
      // keys typed since the last deploy, while this editor session still has them
      var pending = {};
      try {
        if (credentials.pskChanges && credentials.pskChanges !== '__PWRD__') pending = JSON.parse(credentials.pskChanges);
      } catch (error) {
        pending = {};
      }
      node._lwm2mPending = pending;
      var stored = credentials.has_pskKeys ? rows.map(function (row) { return row.identity || row.endpoint; }) : [];
      var list = $('#' + prefix + '-psk-list').editableList({
        addItem: function (container, index, row) {
          var identity = row.identity || row.endpoint || '';
          var line = $('<div/>', { style: 'display:flex; gap:6px' }).appendTo(container);
          $('<input/>', { type: 'text', class: 'lwm2m-psk-endpoint', placeholder: 'endpoint', style: 'flex:1' }).val(row.endpoint || '').appendTo(line);
          $('<input/>', { type: 'text', class: 'lwm2m-psk-identity', placeholder: 'identity (default: endpoint)', style: 'flex:1' }).val(row.identity || '').appendTo(line);
          // a stored key is never shown: an empty field keeps it
          var known = identity !== '' && stored.indexOf(identity) >= 0;
          // (autocomplete as an attribute: passed in the properties, jQuery UI would take it for its widget)
          $('<input/>', { type: 'password', class: 'lwm2m-psk-key', placeholder: known ? 'key: unchanged' : 'key (hex)', style: 'flex:1' })
            .attr('autocomplete', 'new-password')
            .val(pending[identity] || '')
            .appendTo(line);
        },
        removable: true,
        height: 160,
      });
      rows.forEach(function (row) {
        list.editableList('addItem', { endpoint: row.endpoint, identity: row.identity });
      });
    },

    /** oneditsave of a pskList: the rows (without keys) to `psk`, only the typed keys to `pskChanges`. */
    savePskList: function (node, prefix) {
      var rows = [];
      var changes = $.extend({}, node._lwm2mPending || {});
      $('#' + prefix + '-psk-list')
        .editableList('items')
        .each(function () {
          var endpoint = $(this).find('.lwm2m-psk-endpoint').val().trim();
          if (!endpoint) return;
          var identity = $(this).find('.lwm2m-psk-identity').val().trim();
          var key = $(this).find('.lwm2m-psk-key').val().trim();
          rows.push({ endpoint: endpoint, identity: identity });
          if (key) changes[identity || endpoint] = key;
        });
      $('#' + prefix + '-psk').val(JSON.stringify(rows));
      // only typed keys go to the runtime, which adds them to the stored ones; nothing typed keeps them all
      if (Object.keys(changes).length > 0) $('#' + prefix + '-pskChanges').val(JSON.stringify(changes));
      delete node._lwm2mPending;
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

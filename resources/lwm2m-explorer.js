/* The device explorer: the editor's "LwM2M" sidebar tab (the lwm2m-explorer plugin,
 * nodes/lwm2m-explorer.html). It talks to the admin routes under /lwm2m/servers/ (nodes/explorer
 * routes) and listens to RED.comms topics lwm2m/devices/<server>, lwm2m/notify/<server> and
 * lwm2m/observe-end/<server>; it never polls.
 *
 * The tab is a header (the server node, and a button per panel) over one panel at a time. A panel
 * is an object registered with LwM2MExplorer.addPanel({ id, icon, create(context) }) (before or after
 * the tab exists); create returns { element, server(id), reload?(), show(), hide() }, and its button
 * is labelled by the catalog's explorer.panels.<id>. "Devices" is the first; a second one (the CoAP
 * trace) is one more addPanel call. */
(function () {
  if (window.LwM2MExplorer) return;

  var panels = [];
  var t = function (key) {
    return key;
  };

  /** The plugin's texts (locales/<lang>/lwm2m-explorer.json), through the plugin's own RED._. */
  function text(key, substitutions) {
    return t('explorer.' + key, substitutions);
  }

  // ---- values ---------------------------------------------------------------------------------

  // OMA's object 3 (1.1) writes Battery Level's unit as "/100": a percentage
  var UNIT_SHOWN = { '/100': '%' };
  function unitOf(resource) {
    return resource && resource.units ? UNIT_SHOWN[resource.units] || resource.units : '';
  }

  var NUMBER_TYPES = { Integer: true, 'Unsigned Integer': true, Float: true };

  function hexToBase64(hex) {
    var binary = '';
    for (var i = 0; i + 1 < hex.length; i += 2) binary += String.fromCharCode(parseInt(hex.substr(i, 2), 16));
    return btoa(binary);
  }

  function isOpaque(value) {
    return value !== null && typeof value === 'object' && typeof value.$opaque === 'string';
  }

  /** A single value as shown: with its unit, opaque as hex and base64, time as a date. */
  function scalarText(value, resource) {
    if (isOpaque(value)) {
      var hex = value.$opaque;
      if (hex === '') return text('value.emptyOpaque');
      return hex.replace(/(..)(?!$)/g, '$1 ') + '  (base64 ' + hexToBase64(hex) + ')';
    }
    if (resource && resource.type === 'Time' && typeof value === 'number') {
      return new Date(value * 1000).toISOString().replace('.000Z', 'Z') + '  (' + value + ')';
    }
    if (typeof value === 'string') return JSON.stringify(value);
    var shown = String(value);
    if (unitOf(resource) && typeof value === 'number') shown += ' ' + unitOf(resource);
    return shown;
  }

  /** A resource's value: a scalar, or { riid: value } for a multiple-instance resource. */
  function valueText(value, resource) {
    if (value !== null && typeof value === 'object' && !isOpaque(value)) {
      return Object.keys(value)
        .map(function (riid) {
          return riid + ': ' + scalarText(value[riid], resource);
        })
        .join(', ');
    }
    return scalarText(value, resource);
  }

  /** The parts of a value read or notified at `path`, each at the resource path it belongs to. */
  function spread(path, value, level, into) {
    if (level === 'resource' || value === null || typeof value !== 'object' || isOpaque(value)) {
      into.push({ path: path, value: value });
      return into;
    }
    Object.keys(value).forEach(function (key) {
      spread(path + '/' + key, value[key], level === 'object' ? 'instance' : 'resource', into);
    });
    return into;
  }

  function levelOf(path) {
    return ['root', 'object', 'instance', 'resource', 'resourceInstance'][path.split('/').length - 1];
  }

  /** A CoAP error as the explorer shows it: `4.04 NOT_FOUND: the message`. */
  function errorText(xhr) {
    var body = xhr.responseJSON;
    if (body && body.message) return [body.coapCode, body.code, body.message].filter(Boolean).join(' ') ;
    if (xhr.status === 401 || xhr.status === 403) return text('errors.permission', { status: xhr.status });
    return xhr.status ? xhr.status + ' ' + (xhr.statusText || '') : text('errors.unreachable');
  }

  // ---- the runtime ----------------------------------------------------------------------------

  function api(method, url, body) {
    return $.ajax({
      method: method,
      url: url,
      contentType: body ? 'application/json' : undefined,
      data: body ? JSON.stringify(body) : undefined,
      dataType: 'json',
      cache: false,
    });
  }

  function deviceUrl(serverId, endpoint, what) {
    return 'lwm2m/servers/' + encodeURIComponent(serverId) + '/devices/' + encodeURIComponent(endpoint) + (what ? '/' + what : '');
  }

  function canChange() {
    return !RED.user || typeof RED.user.hasPermission !== 'function' || RED.user.hasPermission('lwm2m-server.write');
  }

  // ---- time -----------------------------------------------------------------------------------

  function duration(seconds) {
    if (seconds < 0) return text('device.expired');
    if (seconds < 120) return seconds + ' s';
    if (seconds < 7200) return Math.floor(seconds / 60) + ' min ' + (seconds % 60) + ' s';
    return Math.floor(seconds / 3600) + ' h ' + Math.floor((seconds % 3600) / 60) + ' min';
  }

  function ago(iso) {
    var seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    return text('device.ago', { time: duration(seconds) });
  }

  // ---- the Devices panel ----------------------------------------------------------------------

  function devicesPanel(context) {
    var element = $('<div class="lwm2m-x-panel lwm2m-x-devices"></div>');
    var bar = $('<div class="lwm2m-x-bar"></div>').appendTo(element);
    var filterInput = $('<input type="text" class="lwm2m-x-filter">').attr('placeholder', text('devices.filter')).appendTo(bar);
    var count = $('<span class="lwm2m-x-count"></span>').appendTo(bar);
    var list = $('<div class="lwm2m-x-list"></div>').appendTo(element);
    var empty = $('<div class="lwm2m-x-empty"></div>').appendTo(element);
    var serverId = null;
    var devices = {}; // endpoint -> device view
    var subscribed = [];
    var ticker = null;
    if (typeof filterInput.searchBox === 'function') {
      filterInput.searchBox({ delay: 100, change: applyFilter });
    } else filterInput.on('input', applyFilter);

    function applyFilter() {
      var needle = String(filterInput.val() || '').trim().toLowerCase();
      var shown = 0;
      var all = Object.keys(devices);
      all.forEach(function (endpoint) {
        var device = devices[endpoint];
        var match = needle === '' || device.haystack().indexOf(needle) >= 0;
        device.element.toggle(match);
        if (match) shown++;
      });
      count.text(needle === '' ? text('devices.count', { count: all.length }) : text('devices.shown', { shown: shown, count: all.length }));
      if (filterInput.searchBox && filterInput.data('nodered-searchBox')) filterInput.searchBox('count', needle === '' ? '' : shown + ' / ' + all.length);
      empty.text(serverId ? text('devices.none') : text('servers.none')).toggle(all.length === 0);
    }

    function sorted() {
      var endpoints = Object.keys(devices).sort();
      endpoints.forEach(function (endpoint) {
        list.append(devices[endpoint].element);
      });
    }

    function put(data) {
      var device = devices[data.endpoint];
      if (device) device.update(data);
      else {
        devices[data.endpoint] = deviceView(context, function () {
          return serverId;
        }, data);
        sorted();
      }
      applyFilter();
    }

    function drop(endpoint) {
      var device = devices[endpoint];
      if (!device) return;
      device.element.remove();
      delete devices[endpoint];
      applyFilter();
    }

    function onDevices(topic, event) {
      if (!event || !event.endpoint) return;
      if (event.event === 'deregister' || event.event === 'expire') drop(event.endpoint);
      else if (event.device) {
        var before = devices[event.endpoint];
        put(event.device);
        // a new registration: the device restarted, its observations are gone
        if (before && event.event === 'register') before.registeredAgain();
      } else if (devices[event.endpoint] && (event.event === 'awake' || event.event === 'sleep')) {
        devices[event.endpoint].update($.extend({}, devices[event.endpoint].data, { awake: event.event === 'awake' }));
      }
    }
    function onNotify(topic, event) {
      var device = event && devices[event.endpoint];
      if (device) device.notified(event.path, event.value);
    }
    function onObserveEnd(topic, event) {
      var device = event && devices[event.endpoint];
      if (device) device.observationEnded(event.path, event.reason);
    }

    function unsubscribe() {
      subscribed.forEach(function (entry) {
        RED.comms.unsubscribe(entry[0], entry[1]);
      });
      subscribed = [];
    }
    function subscribe(topic, handler) {
      RED.comms.subscribe(topic, handler);
      subscribed.push([topic, handler]);
    }

    /** The server's devices; `keep`: the same server again (after a deploy), so open trees stay open and are read again. */
    function load(keep) {
      if (!keep) Object.keys(devices).forEach(drop);
      if (!serverId) return applyFilter();
      var id = serverId;
      api('GET', 'lwm2m/servers/' + encodeURIComponent(id) + '/devices')
        .done(function (list) {
          if (id !== serverId) return;
          var present = {};
          list.forEach(function (data) {
            present[data.endpoint] = true;
          });
          Object.keys(devices).forEach(function (endpoint) {
            if (!present[endpoint]) drop(endpoint);
          });
          list.forEach(function (data) {
            var known = devices[data.endpoint];
            put(data);
            if (known) known.refresh();
          });
          applyFilter();
        })
        .fail(function (xhr) {
          if (id === serverId) empty.text(errorText(xhr)).show();
        });
    }

    function tick() {
      // another sidebar tab is showing: nothing to count down
      if (!list.is(':visible')) return;
      Object.keys(devices).forEach(function (endpoint) {
        devices[endpoint].tick();
      });
    }

    return {
      element: element,
      server: function (id) {
        if (id === serverId) return;
        unsubscribe();
        serverId = id;
        if (id) {
          // subscribed before the list is read, so no event falls between the two
          subscribe('lwm2m/devices/' + id, onDevices);
          subscribe('lwm2m/notify/' + id, onNotify);
          subscribe('lwm2m/observe-end/' + id, onObserveEnd);
        }
        load(false);
      },
      reload: function () {
        load(true);
      },
      show: function () {
        if (!ticker) ticker = setInterval(tick, 1000);
        tick();
      },
      hide: function () {
        clearInterval(ticker);
        ticker = null;
      },
    };
  }

  /** One device: its summary row, details, and (expanded) its object tree. */
  function deviceView(context, serverOf, data) {
    var element = $('<div class="lwm2m-x-device"></div>').attr('data-endpoint', data.endpoint);
    var head = $('<div class="lwm2m-x-row lwm2m-x-device-row"></div>').appendTo(element);
    var caret = $('<i class="fa fa-angle-right lwm2m-x-caret"></i>').appendTo(head);
    var name = $('<span class="lwm2m-x-endpoint"></span>').appendTo(head);
    var state = $('<span class="lwm2m-x-state"></span>').appendTo(head);
    var left = $('<span class="lwm2m-x-left"></span>').appendTo(head);
    var details = $('<div class="lwm2m-x-details"></div>').appendTo(element);
    var treeBox = $('<div class="lwm2m-x-tree"></div>').hide().appendTo(element);
    var tree = null;
    var view = { element: element, data: data };

    function render() {
      var d = view.data;
      name.text(d.endpoint);
      element.attr('data-registered-at', d.registeredAt);
      var asleep = d.queueMode && !d.awake;
      state
        .text(d.queueMode ? (asleep ? text('device.asleep') : text('device.awake')) : text('device.online'))
        .toggleClass('lwm2m-x-asleep', !!asleep);
      var security = d.security === 'psk' || d.security === 'certificate' || d.security === 'rawPublicKey' ? text('device.' + d.security, { identity: d.identity || '' }) : text('device.noSecurity');
      details.empty();
      [
        ['version', 'LwM2M ' + d.version],
        ['binding', d.binding + (d.queueMode ? ' · ' + text('device.queue') : '')],
        ['security', security],
        ['address', d.address + ':' + d.port],
        ['lastSeen', ''],
        ['registeredAt', new Date(d.registeredAt).toLocaleTimeString()],
      ].forEach(function (entry) {
        $('<span></span>')
          .addClass('lwm2m-x-' + entry[0])
          .attr('title', text('device.' + entry[0]))
          .text(entry[1])
          .appendTo(details);
      });
      view.tick();
    }

    view.tick = function () {
      var seconds = Math.round((Date.parse(view.data.expiresAt) - Date.now()) / 1000);
      left.text(duration(seconds)).attr('title', text('device.lifetimeLeft', { lifetime: view.data.lifetime }));
      details.find('.lwm2m-x-lastSeen').text(ago(view.data.lastSeen || view.data.updatedAt));
    };
    view.haystack = function () {
      var d = view.data;
      return [d.endpoint, d.version, d.binding, d.address, d.identity || '', d.security].join(' ').toLowerCase();
    };
    view.update = function (next) {
      var objectsChanged = JSON.stringify(next.objects) !== JSON.stringify(view.data.objects);
      view.data = next;
      render();
      if (objectsChanged && tree) loadTree();
    };
    view.registeredAgain = function () {
      if (tree) tree.observationsGone();
    };
    view.refresh = function () {
      if (tree) loadTree();
    };
    view.notified = function (path, value) {
      if (tree) tree.value(path, value, true);
    };
    view.observationEnded = function (path, reason) {
      if (tree) tree.observationEnded(path, reason);
    };

    function loadTree() {
      var shown = tree;
      api('GET', deviceUrl(serverOf(), view.data.endpoint, 'tree'))
        .done(function (body) {
          var next = objectTree(context, serverOf(), view.data.endpoint, body.objects);
          if (shown) next.takeOver(shown);
          // observations the explorer started before (in this editor or another)
          (body.observing || []).forEach(function (path) {
            next.observed(path);
          });
          tree = next;
          treeBox.empty().append(tree.element);
        })
        .fail(function (xhr) {
          treeBox.empty().append($('<div class="lwm2m-x-error"></div>').text(errorText(xhr)));
        });
    }

    head.on('click', function () {
      var open = !element.hasClass('lwm2m-x-open');
      element.toggleClass('lwm2m-x-open', open);
      caret.toggleClass('fa-angle-right', !open).toggleClass('fa-angle-down', open);
      treeBox.toggle(open);
      if (open && !tree) loadTree();
    });

    render();
    return view;
  }

  /** The objects, instances and resources of one device, each a row with its actions. */
  function objectTree(context, serverId, endpoint, objects) {
    var element = $('<div class="lwm2m-x-objects"></div>');
    var rows = {}; // path -> row
    var selected = null;

    function call(operation, body) {
      return api('POST', deviceUrl(serverId, endpoint, operation), body);
    }

    function addRow(parent, options) {
      var row = {
        path: options.path,
        level: levelOf(options.path),
        resource: options.resource,
        object: options.object,
        observed: false,
        children: [],
      };
      row.element = $('<div class="lwm2m-x-node"></div>').attr('data-path', row.path).appendTo(parent ? parent.box : element);
      var line = $('<div class="lwm2m-x-row"></div>')
        .css('padding-left', options.depth * 14 + 6 + 'px')
        .appendTo(row.element);
      row.line = line;
      row.caret = $('<i class="fa lwm2m-x-caret"></i>').toggleClass('fa-angle-right', !!options.expandable).appendTo(line);
      $('<span class="lwm2m-x-path"></span>').text(options.label).appendTo(line);
      $('<span class="lwm2m-x-name"></span>').text(options.name).appendTo(line);
      if (options.meta) $('<span class="lwm2m-x-meta"></span>').text(options.meta).appendTo(line);
      row.observedMark = $('<i class="fa fa-eye lwm2m-x-observed"></i>').attr('title', text('actions.observing')).hide().appendTo(line);
      row.valueEl = $('<span class="lwm2m-x-value"></span>').appendTo(line);
      row.toolbar = $('<span class="lwm2m-x-toolbar"></span>').appendTo(line);
      row.errorEl = $('<div class="lwm2m-x-error"></div>').hide().appendTo(row.element);
      row.form = $('<div class="lwm2m-x-form"></div>').hide().appendTo(row.element);
      row.box = $('<div class="lwm2m-x-children"></div>').hide().appendTo(row.element);
      row.open = false;
      row.expand = function (open) {
        if (!options.expandable) return;
        row.open = open;
        row.box.toggle(open);
        row.caret.toggleClass('fa-angle-right', !open).toggleClass('fa-angle-down', open);
      };
      // as Node-RED's tree lists: a click opens a row, and closes it once it is the selected one
      line.on('click', function (event) {
        if ($(event.target).closest('.lwm2m-x-toolbar').length) return;
        if (!row.open) row.expand(true);
        else if (selected === row || $(event.target).hasClass('lwm2m-x-caret')) row.expand(false);
        select(row);
      });
      rows[row.path] = row;
      if (parent) parent.children.push(row);
      return row;
    }

    function select(row) {
      if (selected === row) return;
      if (selected) {
        selected.line.removeClass('selected');
        selected.toolbar.empty();
      }
      selected = row;
      row.line.addClass('selected');
      toolbar(row);
    }

    // -- what a row shows --

    function showError(row, xhr) {
      // a form's own complaint goes with the form; a device's answer stays until the next action
      row.formError = typeof xhr === 'string';
      row.errorEl.text(typeof xhr === 'string' ? xhr : errorText(xhr)).show();
    }
    function clearError(row) {
      row.formError = false;
      row.errorEl.hide().text('');
    }
    function setValue(path, value, live) {
      spread(path, value, levelOf(path), []).forEach(function (part) {
        var row = rows[part.path];
        var resourcePath = part.path.split('/').slice(0, 4).join('/');
        if (!row && rows[resourcePath]) {
          // a resource instance: shown on its resource
          row = rows[resourcePath];
          var current = $.isPlainObject(row.value) && !isOpaque(row.value) ? row.value : {};
          current[part.path.split('/')[4]] = part.value;
          part.value = current;
        }
        if (!row) return;
        row.value = part.value;
        row.valueEl.text(valueText(part.value, row.resource)).attr('title', row.valueEl.text());
        if (live) {
          row.valueEl.removeClass('lwm2m-x-flash');
          // a notification flashes once
          void row.valueEl[0].offsetWidth;
          row.valueEl.addClass('lwm2m-x-flash');
        }
      });
    }
    function setObserved(row, observed) {
      row.observed = observed;
      row.observedMark.toggle(observed);
      if (selected === row) toolbar(row);
    }

    // -- actions --

    function button(row, id, icon, run, enabled) {
      var item = $('<button type="button" class="red-ui-button red-ui-button-small"></button>')
        .addClass('lwm2m-x-action-' + id)
        .attr('title', text('actions.' + id))
        .append($('<i class="fa"></i>').addClass(icon))
        .appendTo(row.toolbar);
      if (enabled === false) item.prop('disabled', true).attr('title', text('actions.' + id) + ' — ' + text('errors.noWritePermission'));
      item.on('click', function (event) {
        event.stopPropagation();
        run(item);
      });
      return item;
    }

    function run(row, operation, body, done) {
      clearError(row);
      row.line.addClass('lwm2m-x-busy');
      call(operation, body)
        .done(function (answer) {
          if (done) done(answer || {});
        })
        .fail(function (xhr) {
          showError(row, xhr);
        })
        .always(function () {
          row.line.removeClass('lwm2m-x-busy');
        });
    }

    function toolbar(row) {
      row.toolbar.empty();
      var writable = canChange();
      var ops = row.resource ? row.resource.operations : 'RW';
      var readable = ops.indexOf('R') >= 0;
      var level = row.level;
      if (readable) button(row, 'read', 'fa-download', function () { read(row); });
      if (level !== 'object' && ops.indexOf('W') >= 0 && hasWritable(row)) button(row, 'write', 'fa-pencil', function () { writeForm(row); }, writable);
      if (ops.indexOf('E') >= 0) button(row, 'execute', 'fa-play', function () { executeForm(row); }, writable);
      if (readable) {
        if (row.observed) button(row, 'cancel', 'fa-eye-slash', function () { cancel(row); }, writable);
        else button(row, 'observe', 'fa-eye', function () { observe(row); }, writable);
      }
      button(row, 'attributes', 'fa-sliders', function () { attributesForm(row); }, writable);
      button(row, 'discover', 'fa-search', function () { discover(row); });
      if (level === 'object' && row.object.known !== false) button(row, 'create', 'fa-plus', function () { createForm(row); }, writable);
      if (level === 'instance') button(row, 'delete', 'fa-trash', function () { remove(row); }, writable);
      if (level === 'resource') button(row, 'copy', 'fa-clipboard', function (item) { copyMenu(row, item); });
    }

    function hasWritable(row) {
      if (row.resource) return row.resource.operations.indexOf('W') >= 0;
      return writableResources(row).length > 0;
    }
    function writableResources(row) {
      var object = row.object;
      return (object.resources || []).filter(function (resource) {
        return resource.operations.indexOf('W') >= 0;
      });
    }

    function read(row) {
      run(row, 'read', { path: row.path }, function (answer) {
        setValue(answer.path || row.path, answer.value, false);
      });
    }

    function observe(row) {
      run(row, 'observe', { path: row.path }, function (answer) {
        setObserved(row, true);
        if (answer.value !== undefined) setValue(answer.path || row.path, answer.value, true);
      });
    }
    function cancel(row) {
      run(row, 'cancel', { path: row.path }, function () {
        setObserved(row, false);
      });
    }

    function closeForm(row) {
      row.form.hide().empty();
      if (row.formError) clearError(row);
    }
    function openForm(row, className) {
      row.form.empty().show().attr('class', 'lwm2m-x-form ' + className);
      // typing in a form is not a shortcut of the editor
      row.form.off('keydown.lwm2m').on('keydown.lwm2m', function (event) {
        event.stopPropagation();
        if (event.key === 'Escape') closeForm(row);
      });
      return row.form;
    }
    function formButtons(row, form, label, submit) {
      var buttons = $('<div class="lwm2m-x-form-buttons"></div>').appendTo(form);
      $('<button type="button" class="red-ui-button red-ui-button-small"></button>').text(text('form.cancel')).appendTo(buttons).on('click', function () {
        closeForm(row);
      });
      var ok = $('<button type="button" class="red-ui-button red-ui-button-small primary lwm2m-x-submit"></button>').text(label).appendTo(buttons);
      ok.on('click', submit);
      form.find('input').on('keydown', function (event) {
        if (event.key === 'Enter') submit();
      });
    }
    function field(form, label, input) {
      var line = $('<label class="lwm2m-x-field"></label>').appendTo(form);
      $('<span></span>').text(label).appendTo(line);
      input.appendTo(line);
      return input;
    }

    /** An input for one resource's value, by the model's type; `read()` gives the value or throws its error. */
    function valueInput(resource) {
      var input;
      var type = resource.multiple ? 'multiple' : resource.type;
      if (type === 'Boolean') {
        input = $('<select><option value="true">true</option><option value="false">false</option></select>');
      } else if (NUMBER_TYPES[type]) {
        input = $('<input type="number" step="any">');
      } else if (type === 'Time') {
        input = $('<input type="datetime-local" step="1">');
      } else {
        input = $('<input type="text">').attr('placeholder', text('form.placeholder.' + (type === 'multiple' ? 'multiple' : type === 'Opaque' ? 'opaque' : type === 'Objlnk' ? 'objlnk' : 'string')));
      }
      input.addClass('lwm2m-x-input').attr('data-type', type);
      return {
        input: input,
        filled: function () {
          return type === 'Boolean' || String(input.val()) !== '';
        },
        read: function () {
          var raw = input.val();
          if (type === 'Boolean') return raw === 'true';
          if (NUMBER_TYPES[type]) {
            var number = Number(raw);
            if (raw === '' || !isFinite(number)) throw new Error(text('errors.number'));
            return number;
          }
          if (type === 'Time') {
            var time = Date.parse(raw);
            if (isNaN(time)) throw new Error(text('errors.time'));
            return Math.round(time / 1000);
          }
          if (type === 'Opaque') {
            var hex = String(raw).replace(/[\s:]/g, '');
            if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error(text('errors.hex'));
            return { $opaque: hex.toLowerCase() };
          }
          if (type === 'multiple') {
            try {
              var parsed = JSON.parse(raw);
              if ($.isPlainObject(parsed)) return parsed;
            } catch (e) {
              /* said below */
            }
            throw new Error(text('errors.multiple'));
          }
          return String(raw);
        },
      };
    }

    function writeForm(row) {
      var form = openForm(row, 'lwm2m-x-write');
      var entries = [];
      if (row.resource) entries.push({ resource: row.resource, control: valueInput(row.resource) });
      else {
        writableResources(row).forEach(function (resource) {
          entries.push({ resource: resource, control: valueInput(resource) });
        });
      }
      entries.forEach(function (entry) {
        var label = row.resource ? text('form.value') : entry.resource.id + ' ' + entry.resource.name;
        field(form, label, entry.control.input);
        if (!row.resource && entry.resource.type === 'Boolean') entry.control.input.prepend('<option value="" selected></option>');
      });
      if (!row.resource) $('<div class="lwm2m-x-hint"></div>').text(text('form.partial')).appendTo(form);
      formButtons(row, form, text('actions.write'), function () {
        var value;
        try {
          if (row.resource) value = entries[0].control.read();
          else {
            value = {};
            entries.forEach(function (entry) {
              if (entry.control.input.val() === '' || entry.control.input.val() === null) return;
              value[entry.resource.id] = entry.control.read();
            });
            if ($.isEmptyObject(value)) throw new Error(text('errors.nothingToWrite'));
          }
        } catch (error) {
          return showError(row, error.message);
        }
        var body = { path: row.path, value: value };
        if (!row.resource) body.mode = 'update';
        run(row, 'write', body, function () {
          closeForm(row);
          setValue(row.path, value, false);
        });
      });
      form.find('input, select').first().trigger('focus');
    }

    function executeForm(row) {
      var form = openForm(row, 'lwm2m-x-execute');
      var args = field(form, text('form.arguments'), $('<input type="text" class="lwm2m-x-args">').attr('placeholder', text('form.placeholder.arguments')));
      formButtons(row, form, text('actions.execute'), function () {
        var body = { path: row.path };
        if (args.val() !== '') body.args = String(args.val());
        run(row, 'execute', body, function () {
          closeForm(row);
          row.valueEl.text(text('value.executed', { time: new Date().toLocaleTimeString() }));
        });
      });
      args.trigger('focus');
    }

    function attributesForm(row) {
      var form = openForm(row, 'lwm2m-x-attributes');
      var inputs = {};
      ['pmin', 'pmax', 'gt', 'lt', 'st'].forEach(function (name) {
        inputs[name] = field(form, name, $('<input type="number" step="any">').addClass('lwm2m-x-attr-' + name).attr('title', text('form.attributes.' + name)));
      });
      $('<div class="lwm2m-x-hint"></div>').text(text('form.attributes.hint')).appendTo(form);
      formButtons(row, form, text('actions.attributes'), function () {
        var attributes = {};
        Object.keys(inputs).forEach(function (name) {
          if (inputs[name].val() !== '') attributes[name] = Number(inputs[name].val());
        });
        if ($.isEmptyObject(attributes)) return showError(row, text('errors.noAttributes'));
        run(row, 'write-attributes', { path: row.path, attributes: attributes }, function () {
          closeForm(row);
        });
      });
    }

    function discover(row) {
      run(row, 'discover', { path: row.path }, function (answer) {
        var form = openForm(row, 'lwm2m-x-links');
        var listing = $('<div class="lwm2m-x-linklist"></div>').appendTo(form);
        (answer.links || []).forEach(function (link) {
          var attributes = Object.keys(link.attributes || {}).map(function (name) {
            var value = link.attributes[name];
            return value === true || value === '' ? name : name + '=' + value;
          });
          $('<div></div>').text(link.path + (attributes.length ? '  ' + attributes.join(' ') : '')).appendTo(listing);
        });
        if (!(answer.links || []).length) listing.text(text('value.noLinks'));
        formButtons(row, form, text('form.close'), function () {
          closeForm(row);
        });
        form.find('.lwm2m-x-submit').prev().remove();
      });
    }

    function createForm(row) {
      var form = openForm(row, 'lwm2m-x-create');
      var id = field(form, text('form.instance'), $('<input type="number" min="0" max="65534" step="1" class="lwm2m-x-instance">').attr('placeholder', text('form.placeholder.instance')));
      var value = field(form, text('form.resources'), $('<input type="text" class="lwm2m-x-resources">').val('{}').attr('placeholder', '{"5750": "name"}'));
      formButtons(row, form, text('actions.create'), function () {
        var resources;
        try {
          resources = JSON.parse(String(value.val() || '{}'));
          if (!$.isPlainObject(resources)) throw new Error();
        } catch (e) {
          return showError(row, text('errors.resources'));
        }
        var path = row.path + (id.val() !== '' ? '/' + Number(id.val()) : '');
        run(row, 'create', { path: path, value: resources }, function (answer) {
          closeForm(row);
          row.valueEl.text(text('value.created', { path: answer.path || path }));
        });
      });
    }

    function remove(row) {
      var form = openForm(row, 'lwm2m-x-delete');
      $('<div class="lwm2m-x-hint"></div>').text(text('form.confirmDelete', { path: row.path })).appendTo(form);
      formButtons(row, form, text('actions.delete'), function () {
        run(row, 'delete', { path: row.path }, function () {
          closeForm(row);
          row.line.addClass('lwm2m-x-deleted');
          row.valueEl.text(text('value.deleted'));
        });
      });
    }

    // -- copy as flow --

    function copyMenu(row, anchor) {
      var ops = row.resource.operations;
      var choices = [];
      if (ops.indexOf('R') >= 0) choices.push('read', 'observe');
      if (ops.indexOf('W') >= 0) choices.push('write');
      if (ops.indexOf('E') >= 0) choices.push('execute');
      var form = openForm(row, 'lwm2m-x-copy');
      $('<span class="lwm2m-x-hint"></span>').text(text('copy.hint')).appendTo(form);
      choices.forEach(function (kind) {
        $('<button type="button" class="red-ui-button red-ui-button-small"></button>')
          .addClass('lwm2m-x-copy-' + kind)
          .text(text('copy.' + kind))
          .appendTo(form)
          .on('click', function () {
            var nodes = flowNodes(kind, serverId, endpoint, row.path);
            RED.clipboard.copyText(JSON.stringify(nodes), anchor, text('copy.copied'));
            closeForm(row);
          });
      });
    }

    // -- building the tree --

    objects.forEach(function (object) {
      var objectRow = addRow(null, {
        path: '/' + object.id,
        label: '/' + object.id,
        name: object.known === false || !object.name ? text('tree.unknownObject', { id: object.id }) : object.name,
        meta: object.version ? 'v' + object.version : '',
        object: object,
        depth: 0,
        expandable: object.instances.length > 0,
      });
      object.instances.forEach(function (instance) {
        var instancePath = '/' + object.id + '/' + instance;
        var instanceRow = addRow(objectRow, {
          path: instancePath,
          label: instancePath,
          name: text('tree.instance', { id: instance }),
          object: object,
          depth: 1,
          expandable: (object.resources || []).length > 0,
        });
        (object.resources || []).forEach(function (resource) {
          var meta = [resource.type === 'none' ? '' : resource.type, resource.operations, unitOf(resource), resource.multiple ? text('tree.multiple') : ''].filter(Boolean).join(' · ');
          var resourceRow = addRow(instanceRow, {
            path: instancePath + '/' + resource.id,
            label: instancePath + '/' + resource.id,
            name: resource.name,
            meta: meta,
            object: object,
            resource: resource,
            depth: 2,
          });
          if (resource.description) resourceRow.line.attr('title', resource.description);
        });
      });
    });
    if (objects.length === 0) element.text(text('tree.empty'));

    return {
      element: element,
      value: function (path, value, live) {
        setValue(path, value, live);
      },
      observationEnded: function (path, reason) {
        var row = rows[path];
        if (!row) return;
        setObserved(row, false);
        if (reason) showError(row, text('value.observationEnded', { reason: reason }));
      },
      observed: function (path) {
        if (rows[path]) setObserved(rows[path], true);
      },
      observationsGone: function () {
        Object.keys(rows).forEach(function (path) {
          if (rows[path].observed) setObserved(rows[path], false);
        });
      },
      /** Keeps what was open and read in the tree this one replaces (what is observed, the runtime says). */
      takeOver: function (old) {
        old.each(function (path, oldRow) {
          var row = rows[path];
          if (!row) return;
          if (oldRow.open) row.expand(true);
          if (oldRow.value !== undefined) setValue(path, oldRow.value, false);
        });
      },
      each: function (fn) {
        Object.keys(rows).forEach(function (path) {
          fn(path, rows[path]);
        });
      },
    };
  }

  /**
   * A ready node for a resource, as Node-RED's import takes it (Ctrl+I): read, observe, write or
   * execute, with the server, the endpoint and the path filled in.
   */
  function flowNodes(kind, serverId, endpoint, path) {
    var common = {
      id: RED.nodes.id(),
      type: 'lwm2m-' + kind,
      name: '',
      server: serverId,
      endpoint: endpoint,
      endpointType: 'str',
      concurrency: '',
      ttl: '',
      path: path,
      pathType: 'str',
      format: 'auto',
      formatType: 'choice',
      x: 0,
      y: 0,
      wires: [[], []],
    };
    if (kind === 'read') return [$.extend(common, { operation: 'read', operationType: 'choice', names: false })];
    if (kind === 'write') return [$.extend(common, { operation: 'write', operationType: 'choice', value: 'payload', valueType: 'msg' })];
    if (kind === 'observe') {
      // observes as soon as it is deployed and after every registration of the device
      return [$.extend(common, { names: false, autoObserve: true, pmin: '', pmax: '', gt: '', lt: '', st: '', epmin: '', epmax: '' })];
    }
    var execute = $.extend(common, { args: '', argsType: 'str' });
    delete execute.format;
    delete execute.formatType;
    return [execute];
  }

  // ---- the tab --------------------------------------------------------------------------------

  var mount = null; // once the tab exists: adds a panel to it

  /** A panel of the tab (Devices, and later Trace): { id, icon, create(context) → { element, server(id), reload?(), show(), hide() } }. */
  function addPanel(panel) {
    panels.push(panel);
    if (mount) mount(panel);
  }

  function start(plugin) {
    if (plugin && typeof plugin._ === 'function') t = plugin._;
    var content = $('<div class="lwm2m-explorer"></div>');
    var header = $('<div class="red-ui-sidebar-header lwm2m-x-header"></div>').appendTo(content);
    var serverSelect = $('<select class="lwm2m-x-server"></select>').attr('title', text('servers.title')).appendTo(header);
    var switcher = $('<span class="button-group lwm2m-x-switch"></span>').appendTo(header);
    var body = $('<div class="lwm2m-x-body"></div>').appendTo(content);
    var context = { text: text, api: api, errorText: errorText };
    var built = [];
    mount = function (panel) {
      var instance = panel.create(context);
      instance.id = panel.id;
      instance.element.hide().appendTo(body);
      instance.button = $('<button type="button" class="red-ui-button red-ui-button-small"></button>')
        .addClass('lwm2m-x-show-' + panel.id)
        .append($('<i class="fa"></i>').addClass(panel.icon), ' ', $('<span></span>').text(text('panels.' + panel.id)))
        .appendTo(switcher)
        .on('click', function () {
          choose(instance);
        });
      built.push(instance);
      if (serverId !== undefined) instance.server(serverId);
      return instance;
    };
    var current = null;
    var visible = false;
    function choose(instance) {
      if (current && current !== instance) {
        current.hide();
        current.element.hide();
        current.button.removeClass('selected');
      }
      current = instance;
      instance.element.show();
      instance.button.addClass('selected');
      if (visible) instance.show();
    }

    /** The deployed server nodes, named as in the flow; the previous choice kept, else the first. */
    // a deploy stops and starts the runtime, each told as an event: only the latest answer counts
    // (one asked while the flows were stopped, answered late, would empty the list)
    var serversAsked = 0;
    function loadServers(reload) {
      var mine = ++serversAsked;
      api('GET', 'lwm2m/servers')
        .done(function (servers) {
          if (mine !== serversAsked) return;
          var previous = serverSelect.val() || localStorage.getItem('lwm2m-explorer-server');
          serverSelect.empty();
          servers.forEach(function (server) {
            var node = RED.nodes.node(server.id);
            var label = (node && node.name) || server.name || 'lwm2m-server :' + server.port;
            if (!server.listening) label += ' — ' + (server.error || text('servers.notListening'));
            $('<option></option>').val(server.id).text(label).appendTo(serverSelect);
          });
          if (servers.length === 0) $('<option value=""></option>').text(text('servers.none')).appendTo(serverSelect);
          var ids = servers.map(function (server) {
            return server.id;
          });
          serverSelect.val(ids.indexOf(previous) >= 0 ? previous : ids[0] || '');
          if (!serverChanged() && reload === true) {
            built.forEach(function (instance) {
              if (instance.reload) instance.reload();
            });
          }
        })
        .fail(function (xhr) {
          if (mine !== serversAsked) return;
          serverSelect.empty().append($('<option value=""></option>').text(errorText(xhr)));
          serverChanged();
        });
    }
    var serverId;
    function serverChanged() {
      var id = serverSelect.val() || null;
      if (id && id !== serverId) localStorage.setItem('lwm2m-explorer-server', id);
      if (id === serverId) return false;
      serverId = id;
      built.forEach(function (instance) {
        instance.server(id);
      });
      return true;
    }
    serverSelect.on('change', serverChanged);

    RED.sidebar.addTab({
      id: 'lwm2m-explorer',
      label: text('label'),
      name: text('name'),
      iconClass: 'fa fa-microchip',
      content: content,
      enableOnEdit: false,
      onchange: function () {
        visible = true;
        loadServers(false);
        if (current) current.show();
      },
      onremove: function () {
        visible = false;
        if (current) current.hide();
      },
    });
    panels.forEach(mount);
    if (built.length) choose(built[0]);
    // a deploy may add, remove or restart server nodes (and the devices' registrations go with them)
    RED.events.on('deploy', function () {
      loadServers(true);
    });
    RED.events.on('runtime-state', function () {
      loadServers(true);
    });
    loadServers(false);
  }

  addPanel({ id: 'devices', icon: 'fa-list', create: devicesPanel });
  // panels whose scripts the editor loaded before this one (the Trace panel)
  (window.LwM2MExplorerPanels || []).forEach(addPanel);

  window.LwM2MExplorer = {
    start: start,
    addPanel: addPanel,
    // for the Trace panel and tests
    text: text,
    api: api,
    errorText: errorText,
    canChange: canChange,
    flowNodes: flowNodes,
    valueText: valueText,
  };
})();
